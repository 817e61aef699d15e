//! An NDJSON collection, streamed: lines are gathered into small batches (released at most
//! [`BATCH_WINDOW`] after a batch's first line arrived, or sooner when it is full), each batch
//! is decided with one store call, its records are made durable in one group commit, and only
//! then is its chunk sent. Two tasks: the pump reads, decides and submits batch n + 1 (only
//! once batch n is durable, so nothing is recorded past a failure) while the releaser waits for
//! batch n's records and sends its chunk. Memory holds one partial line (at most
//! `max_body_bytes`), at most three batches (deciding, queued, being written) and one chunk
//! waiting for the client, whatever the stream's length.
//!
//! A line over `max_body_bytes`, an upstream that stalls longer than `upstream_timeout`
//! between bytes or breaks, more than `max_elements` records, or records that cannot be
//! written end the stream: the client
//! sees it cut off (no terminating chunk), never an unchecked line, and one record with
//! `subject: null` at the position where it ended says why.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::super::{Ctx, forward};
use super::lines::Lines;
use super::{audit_all, count, records, release_headers};
use crate::audit::{AuditEntry, CollectionPos, Decision, Ticket};
use crate::error::GatewayError;
use crate::http::{Body, BoxError};
use crate::redact::locate;
use crate::routing::{Collection, CollectionFormat};
use crate::state::State;

/// The longest a decided line waits for its batch to fill (SPEC: a chunk at least every
/// 100 ms while lines flow; the rest of the budget is the batch's decisions and fsync).
const BATCH_WINDOW: Duration = Duration::from_millis(40);
/// Most lines in one batch (one store call, one group commit, one chunk).
const BATCH_LINES: usize = 1024;
/// Most input bytes in one batch.
const BATCH_BYTES: usize = 1 << 20;

/// Forwards, waits for the head within `upstream_timeout`, and answers with a body fed by a
/// task that decides, audits and releases the stream chunk by chunk.
pub(super) async fn respond(
    state: &Arc<State>,
    route_index: usize,
    req: records::Request,
    upstream_req: Request<Body>,
    head_only: bool,
    ctx: &mut Ctx,
) -> Result<Response<Body>, GatewayError> {
    let g = &state.settings.gateway;
    let resp = forward::send(
        state.client.current(),
        upstream_req,
        g.upstream_timeout,
        g.max_body_bytes,
    )
    .await?;
    let (mut parts, body) = resp.into_parts();
    if parts.status == http::StatusCode::PARTIAL_CONTENT {
        return Err(GatewayError::UnprocessableUpstreamBody(
            "the upstream answered with partial content, which cannot be minimised".into(),
        ));
    }
    forward::response_headers(&mut parts.headers);
    // The gateway asked for `identity`; a compressed stream cannot be inspected line by line.
    let encoded = parts
        .headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(GatewayError::UnprocessableUpstreamBody(
            "the upstream compressed its NDJSON stream; the gateway inspects streams uncompressed only".into(),
        ));
    }
    let status = parts.status.as_u16();
    release_headers(&mut parts.headers, "application/x-ndjson");
    parts.headers.remove(header::CONTENT_LENGTH);
    if head_only {
        // Nothing of the stream is read or released: the exchange's one record says so.
        ctx.verdict = Some(crate::policy::Verdict::Allow);
        ctx.reason = Some("head_only");
        return Ok(Response::from_parts(parts, crate::http::empty()));
    }
    ctx.audited = true;
    let (tx, rx) = mpsc::channel(1);
    let pump = Pump {
        state: state.clone(),
        route_index,
        req,
        status,
        max_line: g.max_body_bytes,
        wait: g.upstream_timeout,
        slot: ctx.slot.take().map(Arc::new),
    };
    // Tracked like an exchange: shutdown waits for the stream's records.
    state.exchanges.spawn(pump.run(body, tx));
    Ok(Response::from_parts(parts, ChunkBody(rx).boxed()))
}

/// The released stream: chunks from the pump; an error frame cuts it off.
struct ChunkBody(mpsc::Receiver<Result<Bytes, GatewayError>>);

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|next| {
            next.map(|chunk| chunk.map(Frame::data).map_err(|e| Box::new(e) as BoxError))
        })
    }
}

/// Why reading the stream stopped.
enum End {
    /// The upstream finished.
    Done,
    /// The stream must be cut off here.
    Fail(GatewayError),
}

struct Pump {
    state: Arc<State>,
    route_index: usize,
    req: records::Request,
    status: u16,
    max_line: u64,
    wait: Duration,
    /// The request's in-flight place: a stream counts against `gateway.max_in_flight` until
    /// it ends, not only until its head is sent.
    /// Shared with the releaser: whichever of the two ends last gives it back.
    slot: Option<Arc<crate::pipeline::Slot>>,
}

impl Pump {
    fn collection(&self) -> Option<&Collection> {
        self.state
            .settings
            .routes
            .get(self.route_index)
            .and_then(|r| r.collection.as_ref())
            .filter(|c| c.format == CollectionFormat::Ndjson)
    }

    async fn run(self, mut body: Incoming, tx: mpsc::Sender<Result<Bytes, GatewayError>>) {
        let (queue, batches) = mpsc::channel(1);
        let releaser = Releaser {
            state: self.state.clone(),
            route_index: self.route_index,
            request_id: self.req.request_id.clone(),
            _slot: self.slot.clone(),
        };
        self.state
            .exchanges
            .spawn(releaser.run(batches, tx.clone()));
        let mut partial = Lines::new(self.max_line);
        let mut next_index = 0u64;
        let mut last = Ticket::NONE;
        let end = loop {
            let (lines, end) = self.gather(&mut body, &mut partial).await;
            let end = match self
                .release(lines, &mut next_index, &mut last, &queue)
                .await
            {
                Ok(()) => end,
                Err(e) => Some(End::Fail(e)),
            };
            match end {
                Some(end) => break end,
                // The client left, or the releaser stopped on an audit failure (seen below).
                None if tx.is_closed() || queue.is_closed() => break End::Done,
                None => {}
            }
        };
        drop(tx);
        // The last batch handed over may still fail to be written: the stream's end is
        // known once it is durable (a releaser that stopped early saw such a failure).
        let end = match self.state.audit.wait(last).await {
            Ok(()) => end,
            Err(_) => End::Fail(GatewayError::AuditUnavailable),
        };
        let closing = match &end {
            End::Done if next_index > 0 => None,
            End::Done => Some(
                self.req
                    .entry(Decision::Allow, "empty_collection", self.status),
            ),
            End::Fail(e) => {
                let mut entry = self.req.entry(Decision::Deny, e.code(), self.status);
                entry.collection = Some(CollectionPos {
                    index: next_index,
                    count: None,
                });
                tracing::warn!(request_id = %self.req.request_id, reason = e.code(), "NDJSON collection stream cut off");
                Some(entry)
            }
        };
        // The stream's end is recorded even if the client is gone or not reading, and after
        // every record of the stream.
        if let Some(closing) = closing {
            let _ = audit_all(
                &self.state,
                self.route_index,
                &self.req.request_id,
                vec![closing],
            )
            .await;
        }
        if let End::Fail(e) = end {
            let _ = queue.send(Out::Cut(e)).await;
        }
    }

    /// Reads until a batch is ready: full, [`BATCH_WINDOW`] after its first line, or the
    /// stream ended (then the unterminated last line counts as a line).
    async fn gather(&self, body: &mut Incoming, partial: &mut Lines) -> (Vec<Bytes>, Option<End>) {
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        let mut window: Option<Instant> = None;
        while lines.len() < BATCH_LINES && bytes < BATCH_BYTES {
            let now = Instant::now();
            let wait = match window {
                Some(deadline) if deadline <= now => break,
                Some(deadline) => (deadline - now).min(self.wait),
                None => self.wait,
            };
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Err(_) if window.is_some_and(|d| d <= Instant::now()) => break,
                Err(_) => return (lines, Some(End::Fail(GatewayError::UpstreamTimeout))),
                Ok(None) => {
                    lines.extend(partial.finish());
                    return (lines, Some(End::Done));
                }
                Ok(Some(Err(_))) => {
                    return (lines, Some(End::Fail(GatewayError::UpstreamUnavailable)));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let before = lines.len();
            if partial.push(data, &mut lines).is_err() {
                return (lines, Some(self.too_long()));
            }
            bytes += lines[before..].iter().map(Bytes::len).sum::<usize>();
            if lines.len() > before {
                window.get_or_insert_with(|| Instant::now() + BATCH_WINDOW);
            }
        }
        (lines, None)
    }

    fn too_long(&self) -> End {
        End::Fail(GatewayError::ResponseTooLarge {
            limit: self.max_line,
        })
    }

    /// Decides a batch and hands it to the audit log and the releaser (which sends its chunk
    /// once its records are durable). The next batch is decided while this one's records are
    /// written, but submitted only after they are durable: nothing is recorded past a failure.
    async fn release(
        &self,
        lines: Vec<Bytes>,
        next_index: &mut u64,
        last: &mut Ticket,
        queue: &mpsc::Sender<Out>,
    ) -> Result<(), GatewayError> {
        let Some(collection) = self.collection() else {
            return Err(GatewayError::Internal);
        };
        let mut records: Vec<records::Record<'_>> = lines
            .iter()
            .map(|l| l.trim_ascii())
            .filter(|l| !l.is_empty())
            .map(|text| match locate::record(text, &collection.subject) {
                Ok(Some(subject)) => records::Record::Json { text, subject },
                Ok(None) | Err(_) => records::Record::Unreadable,
            })
            .collect();
        let mut too_many = None;
        if let Some(max) = collection.max_elements {
            let room = max.saturating_sub(*next_index);
            if records.len() as u64 > room {
                records.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                too_many = Some(GatewayError::CollectionTooLarge { limit: max });
            }
        }
        if !records.is_empty() {
            self.submit(&records, next_index, last, queue).await?;
        }
        too_many.map_or(Ok(()), Err)
    }

    async fn submit(
        &self,
        records: &[records::Record<'_>],
        next_index: &mut u64,
        last: &mut Ticket,
        queue: &mpsc::Sender<Out>,
    ) -> Result<(), GatewayError> {
        let route = self
            .state
            .settings
            .routes
            .get(self.route_index)
            .ok_or(GatewayError::Internal)?;
        let mut chunk = Vec::new();
        let entries = records::decide(
            &self.state,
            route,
            &self.req,
            records,
            CollectionPos {
                index: *next_index,
                count: None,
            },
            self.status,
            &mut chunk,
            b'\n',
        )
        .await?;
        let audit = &self.state.audit;
        let unavailable = |_| GatewayError::AuditUnavailable;
        audit.wait(*last).await.map_err(unavailable)?;
        *last = audit.submit_all(&entries).map_err(unavailable)?;
        *next_index += entries.len() as u64;
        // A releaser that is gone (the client left) ends the stream after this batch.
        let _ = queue
            .send(Out::Batch(Submitted {
                ticket: *last,
                chunk,
                entries,
            }))
            .await;
        Ok(())
    }
}

/// A batch handed to the audit log: its chunk is released once its records are durable.
struct Submitted {
    ticket: Ticket,
    chunk: Vec<u8>,
    entries: Vec<AuditEntry>,
}

/// What the pump hands the releaser, in stream order.
enum Out {
    Batch(Submitted),
    /// Cut the stream off here, after every batch before it.
    Cut(GatewayError),
}

/// Sends each batch's chunk once its records are durable, in order; cuts the stream off if
/// they could not be written.
struct Releaser {
    state: Arc<State>,
    route_index: usize,
    request_id: String,
    _slot: Option<Arc<crate::pipeline::Slot>>,
}

impl Releaser {
    async fn run(
        self,
        mut batches: mpsc::Receiver<Out>,
        tx: mpsc::Sender<Result<Bytes, GatewayError>>,
    ) {
        let mut client = Some(tx);
        while let Some(out) = batches.recv().await {
            let batch = match out {
                Out::Batch(batch) => batch,
                Out::Cut(e) => {
                    if let Some(tx) = &client {
                        let _ = tx.send(Err(e)).await;
                    }
                    return;
                }
            };
            let written = self.state.audit.wait(batch.ticket).await.is_ok();
            count(&self.state, self.route_index, &batch.entries, written);
            if !written {
                tracing::error!(request_id = %self.request_id, "collection audit records not written; cutting the stream off");
                if let Some(tx) = &client {
                    let _ = tx.send(Err(GatewayError::AuditUnavailable)).await;
                }
                return;
            }
            // A client that went away: the batches already decided are still counted.
            if let Some(tx) = &client
                && !batch.chunk.is_empty()
                && tx.send(Ok(Bytes::from(batch.chunk))).await.is_err()
            {
                client = None;
            }
        }
    }
}
