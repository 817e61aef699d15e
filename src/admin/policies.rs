//! Policy API: the loaded set and reloads.

use http::{Response, StatusCode};

use super::attribution::{self, Act};
use super::{Req, json};
use crate::error::GatewayError;
use crate::http::Body;
use crate::state::State;

fn listing(state: &State) -> serde_json::Value {
    let set = state.policies.current();
    serde_json::json!({
        "dir": state.policies.dir().display().to_string(),
        "policies": set.summaries(),
        "reloads": state.policies.reload_count(),
        "last_reload_error": state.policies.last_error().map(|e| e.to_string()),
    })
}

/// `GET /v1/policies`: regions, names, versions, modes, purposes, and the last reload error.
pub(crate) fn list(state: &State) -> Response<Body> {
    json(StatusCode::OK, &listing(state))
}

/// `POST /v1/policies/reload`: validates the folder whole and swaps atomically; an invalid set
/// is refused (`400` with every error as `file:line:column: message`) and the last good set
/// keeps serving. Either outcome is an audit record naming the caller.
pub(crate) async fn reload(req: &Req<'_>, caller: &str) -> Result<Response<Body>, GatewayError> {
    let (state, request_id) = (req.state, req.request_id);
    let entry = super::routes::routes()
        .iter()
        .find(|r| r.handler == super::routes::Handler::PolicyReload)
        .ok_or(GatewayError::Internal)?;
    let registry = state.policies.clone();
    let result = tokio::task::spawn_blocking(move || registry.reload())
        .await
        .map_err(|_| GatewayError::Internal)?;
    match result {
        Ok(()) => {
            tracing::info!(%caller, "policies reloaded (admin API)");
            attribution::record(req, entry, Act::PolicyReload, StatusCode::OK).await?;
            Ok(json(StatusCode::OK, &listing(state)))
        }
        Err(errors) => {
            tracing::error!(errors = %errors, %caller, "policy reload refused; the last good set keeps serving");
            attribution::record(
                req,
                entry,
                Act::PolicyReloadRefused,
                StatusCode::BAD_REQUEST,
            )
            .await?;
            let err = GatewayError::BadRequest(
                "the policy set is invalid and was not loaded; the last good set keeps serving"
                    .into(),
            );
            let mut v: serde_json::Value =
                serde_json::from_slice(&err.body(request_id)).unwrap_or_default();
            v["errors"] = errors
                .errors()
                .iter()
                .map(|e| serde_json::Value::from(e.to_string()))
                .collect();
            Ok(json(StatusCode::BAD_REQUEST, &v))
        }
    }
}
