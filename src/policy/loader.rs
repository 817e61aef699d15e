//! Loads a policy folder: parse every file, resolve `extends`, validate, compile.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::errors::{LoadError, LoadErrors};
use super::model::{
    ActionSpec, Basis, ConsentMode, DEFAULT_RECEIPT_RETENTION, FieldList, Mode, NonJson, Policy,
    Purpose, RedactRule, RedactorSpec,
};
use super::raw::{RawPolicy, RawPurpose, RawRedactor};
use super::version::version_of;
use crate::redact::{
    Action, Detector, FieldFilter, FieldPath, FieldRule, Plan, Redactor, RedactorError,
};

/// Options for loading policies.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Secret key for `hash` redactors (from `[policies] hash_secret_file`).
    pub hash_key: Option<Vec<u8>>,
    /// Regions the set must have (the gateway's `default_region`): a set without one of them
    /// is refused at start and on reload, never swapped in.
    pub required_regions: Vec<String>,
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<secret>"))
            .field("required_regions", &self.required_regions)
            .finish()
    }
}

/// Largest policy file accepted.
const MAX_FILE_BYTES: u64 = 1 << 20;

struct Source {
    file: String,
    raw: RawPolicy,
}

/// Whether a folder entry is a policy file: `*.yaml`, not starting with `_`.
pub(crate) fn is_policy_file(name: &str) -> bool {
    name.ends_with(".yaml") && !name.starts_with('_') && name.len() > ".yaml".len()
}

pub(crate) fn load_dir(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<BTreeMap<String, Arc<Policy>>, LoadErrors> {
    let mut errors = BTreeSet::new();
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        LoadErrors(vec![LoadError::file(
            &shown,
            format!("cannot read the policy folder: {e}"),
        )])
    })?;
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| is_policy_file(n))
        .collect();
    files.sort();
    let mut texts = Vec::new();
    for file in files {
        let path = dir.join(&file);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                errors.insert(LoadError::file(&file, "the file is larger than 1 MiB"));
                continue;
            }
            _ => {}
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push((file, text)),
            Err(e) => {
                errors.insert(LoadError::file(&file, format!("cannot read the file: {e}")));
            }
        }
    }
    if texts.is_empty() && errors.is_empty() {
        errors.insert(LoadError::file(
            &shown,
            "no policy files (*.yaml) in this folder",
        ));
    }
    let policies = load_texts(&texts, opts, &mut errors);
    for region in &opts.required_regions {
        if errors.is_empty() && !policies.contains_key(region) {
            errors.insert(LoadError::file(
                &shown,
                format!(
                    "the gateway's default_region \"{region}\" has no policy here: add {region}.yaml or change gateway.default_region"
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(policies)
    } else {
        Err(LoadErrors(errors.into_iter().collect()))
    }
}

/// Loads policies from `(file name, contents)` pairs. Pure; errors are added to `errors`.
pub(crate) fn load_texts(
    texts: &[(String, String)],
    opts: &LoadOptions,
    errors: &mut BTreeSet<LoadError>,
) -> BTreeMap<String, Arc<Policy>> {
    let mut sources = BTreeMap::new();
    let mut broken = BTreeSet::new();
    for (file, text) in texts {
        let stem = file.strip_suffix(".yaml").unwrap_or(file).to_owned();
        if crate::consent::validate_region(&stem).is_err() {
            errors.insert(LoadError::file(
                file,
                "a policy file is named after its region: 1 to 32 lower-case letters, digits and - (the form the consent API and gateway.default_region accept)",
            ));
            continue;
        }
        let options = serde_saphyr::options! { with_snippet: false };
        match serde_saphyr::from_str_with_options::<RawPolicy>(text, options) {
            Ok(raw) => {
                if raw.region.value != stem {
                    errors.insert(LoadError::at(
                        file,
                        raw.region.referenced,
                        format!(
                            "region is \"{}\", but the file is named {file}; the region must equal the file name without .yaml",
                            raw.region.value
                        ),
                    ));
                    broken.insert(stem);
                    continue;
                }
                sources.insert(
                    stem,
                    Source {
                        file: file.clone(),
                        raw,
                    },
                );
            }
            Err(e) => {
                errors.insert(LoadError::from_yaml(file, &e));
                broken.insert(stem);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (stem, src) in &sources {
        let before = errors.len();
        let Some(chain) = chain(stem, &sources, &broken, errors) else {
            continue;
        };
        let policy = resolve(src, &chain, opts, errors);
        if errors.len() == before
            && let Some(p) = policy
        {
            out.insert(stem.clone(), Arc::new(p));
        }
    }
    out
}

/// The policy's ancestors, root first, ending with the policy itself.
fn chain<'a>(
    stem: &str,
    sources: &'a BTreeMap<String, Source>,
    broken: &BTreeSet<String>,
    errors: &mut BTreeSet<LoadError>,
) -> Option<Vec<&'a Source>> {
    let mut names = vec![stem.to_owned()];
    let mut chain = vec![sources.get(stem)?];
    while let Some(parent) = chain.last().and_then(|s| s.raw.extends.as_ref()) {
        let child = chain.last()?;
        let p = &parent.value;
        if names.contains(p) {
            let mut cycle = names.clone();
            cycle.push(p.clone());
            // Reported at the policy's own `extends`, so every file in the cycle gets a line.
            let own = chain.first()?;
            let own_parent = own.raw.extends.as_ref()?;
            errors.insert(LoadError::at(
                &own.file,
                own_parent.referenced,
                format!(
                    "extends \"{}\", which leads back to {p} (a cycle: {}); remove one extends",
                    own_parent.value,
                    cycle.join(" → ")
                ),
            ));
            return None;
        }
        match sources.get(p) {
            Some(src) => {
                names.push(p.clone());
                chain.push(src);
            }
            None if broken.contains(p) => {
                errors.insert(LoadError::at(
                    &child.file,
                    parent.referenced,
                    format!("extends \"{p}\", but {p}.yaml has errors; fix those first"),
                ));
                return None;
            }
            None => {
                errors.insert(LoadError::at(
                    &child.file,
                    parent.referenced,
                    format!("extends \"{p}\", but there is no {p}.yaml in the policy folder"),
                ));
                return None;
            }
        }
    }
    chain.reverse();
    Some(chain)
}

struct Defined<'a, T> {
    file: &'a str,
    key: Location,
    item: &'a T,
}

fn resolve(
    src: &Source,
    chain: &[&Source],
    opts: &LoadOptions,
    errors: &mut BTreeSet<LoadError>,
) -> Option<Policy> {
    let mut redactors: BTreeMap<&str, Defined<'_, RawRedactor>> = BTreeMap::new();
    let mut purposes: BTreeMap<&str, Defined<'_, RawPurpose>> = BTreeMap::new();
    let (mut mode, mut honor_gpc, mut non_json) = (None, None, None);
    let mut retention: Option<(&str, &Spanned<String>)> = None;
    for s in chain {
        for (k, r) in &s.raw.redactors.0 {
            redactors.insert(
                &k.value,
                Defined {
                    file: &s.file,
                    key: k.referenced,
                    item: r,
                },
            );
        }
        for (k, p) in &s.raw.purposes.0 {
            purposes.insert(
                &k.value,
                Defined {
                    file: &s.file,
                    key: k.referenced,
                    item: p,
                },
            );
        }
        mode = s.raw.mode.or(mode);
        honor_gpc = s.raw.honor_gpc.or(honor_gpc);
        non_json = s.raw.non_json.or(non_json);
        if let Some(r) = &s.raw.receipt_retention {
            retention = Some((&s.file, r));
        }
    }
    let receipt_retention = match retention {
        None => DEFAULT_RECEIPT_RETENTION,
        Some((file, r)) => receipt_retention(file, r, errors)?,
    };
    let used: BTreeSet<&str> = purposes
        .values()
        .flat_map(|p| p.item.redact.iter())
        .flat_map(|r| {
            r.value
                .with
                .iter()
                .chain(r.value.text.iter().flatten())
                .map(|n| n.value.as_str())
        })
        .collect();
    let mut specs = BTreeMap::new();
    let mut compiled = BTreeMap::new();
    for (name, d) in &redactors {
        if let Some((spec, red)) = redactor(name, d, used.contains(name), opts, errors) {
            specs.insert((*name).to_owned(), spec);
            if let Some(red) = red {
                compiled.insert(*name, Arc::new(red));
            }
        }
    }
    let known = Known {
        compiled: &compiled,
        defined: redactors.keys().copied().collect(),
    };
    let mut resolved = BTreeMap::new();
    for (name, d) in &purposes {
        if let Some(p) = purpose(name, d, &known, errors) {
            resolved.insert((*name).to_owned(), Arc::new(p));
        }
    }
    let mut policy = Policy {
        region: src.raw.region.value.clone(),
        name: src.raw.name.clone(),
        extends: src.raw.extends.as_ref().map(|e| e.value.clone()),
        mode: mode.unwrap_or(Mode::Enforce),
        honor_gpc: honor_gpc.unwrap_or(false),
        non_json: non_json.unwrap_or(NonJson::Block),
        receipt_retention,
        purposes: resolved,
        redactors: specs,
        version: String::new(),
    };
    policy.version = version_of(&policy);
    Some(policy)
}

/// Validates a redactor; compiles it when it is used (unused `hash` redactors need no key).
fn redactor(
    name: &str,
    d: &Defined<'_, RawRedactor>,
    used: bool,
    opts: &LoadOptions,
    errors: &mut BTreeSet<LoadError>,
) -> Option<(RedactorSpec, Option<Redactor>)> {
    let r = d.item;
    let mut actions = Vec::new();
    if let Some(text) = &r.replace {
        actions.push(("replace", ActionSpec::Replace(text.clone())));
    }
    if let Some(m) = r.mask {
        actions.push((
            "mask",
            ActionSpec::Mask {
                keep_last: m.keep_last,
            },
        ));
    }
    if let Some(h) = &r.hash {
        if !h.value {
            errors.insert(LoadError::at(
                d.file,
                h.referenced,
                format!(
                    "redactor \"{name}\" has hash: false; write hash: true, or use replace or mask"
                ),
            ));
            return None;
        }
        actions.push(("hash", ActionSpec::Hash));
    }
    let action = match actions.len() {
        1 => actions.pop().map(|(_, a)| a)?,
        0 => {
            errors.insert(LoadError::at(
                d.file,
                d.key,
                format!("redactor \"{name}\" needs an action: replace, mask or hash"),
            ));
            return None;
        }
        _ => {
            let names: Vec<&str> = actions.iter().map(|(n, _)| *n).collect();
            errors.insert(LoadError::at(
                d.file,
                d.key,
                format!(
                    "redactor \"{name}\" has more than one action ({}); keep one",
                    names.join(", ")
                ),
            ));
            return None;
        }
    };
    let run_action = match &action {
        ActionSpec::Replace(t) => Action::Replace(t.clone()),
        ActionSpec::Mask { keep_last } => Action::Mask {
            keep_last: *keep_last,
        },
        ActionSpec::Hash => Action::Hash,
    };
    let validate = r.validate.as_ref().map(|v| v.value);
    let built = match (&r.pattern, &r.detector) {
        (Some(p), None) => {
            let spec = RedactorSpec {
                pattern: Some(p.value.clone()),
                detector: None,
                action,
                validate,
            };
            let red = Redactor::new(
                name,
                &p.value,
                &run_action,
                validate,
                opts.hash_key.as_deref(),
            );
            (spec, red, p.referenced)
        }
        (None, Some(det)) => {
            let Some(detector) = Detector::from_name(&det.value) else {
                let known: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
                errors.insert(LoadError::at(
                    d.file,
                    det.referenced,
                    format!(
                        "redactor \"{name}\" names detector \"{}\", which is not built in (built-in detectors: {})",
                        det.value,
                        known.join(", ")
                    ),
                ));
                return None;
            };
            if let Some(v) = &r.validate {
                errors.insert(LoadError::at(
                    d.file,
                    v.referenced,
                    format!(
                        "redactor \"{name}\" sets validate, but built-in detectors validate their own matches; remove it (validate goes with pattern)"
                    ),
                ));
                return None;
            }
            let spec = RedactorSpec {
                pattern: None,
                detector: Some(detector),
                action,
                validate: None,
            };
            let red = Redactor::builtin(name, detector, &run_action, opts.hash_key.as_deref());
            (spec, red, det.referenced)
        }
        (Some(p), Some(_)) => {
            errors.insert(LoadError::at(
                d.file,
                p.referenced,
                format!(
                    "redactor \"{name}\" has both pattern and detector; keep one (detector for a built-in, pattern for your own regex)"
                ),
            ));
            return None;
        }
        (None, None) => {
            let known: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
            errors.insert(LoadError::at(
                d.file,
                d.key,
                format!(
                    "redactor \"{name}\" needs a pattern (a regular expression) or a detector (one of: {})",
                    known.join(", ")
                ),
            ));
            return None;
        }
    };
    let (spec, red, at) = built;
    match red {
        Ok(red) => Some((spec, Some(red))),
        Err(RedactorError::MissingHashKey { .. }) if !used => Some((spec, None)),
        Err(e @ RedactorError::Pattern { .. }) => {
            errors.insert(LoadError::at(d.file, at, e.to_string()));
            None
        }
        Err(e) => {
            errors.insert(LoadError::at(d.file, d.key, e.to_string()));
            None
        }
    }
}

fn paths(
    purpose: &str,
    file: &str,
    list: &[Spanned<String>],
    errors: &mut BTreeSet<LoadError>,
) -> Option<Vec<FieldPath>> {
    let mut out = Vec::new();
    let mut ok = true;
    for p in list {
        match FieldPath::parse(&p.value) {
            Ok(fp) => out.push(fp),
            Err(e) => {
                errors.insert(LoadError::at(
                    file,
                    p.referenced,
                    format!("purpose \"{purpose}\": {e}"),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// The redactors a purpose may reference.
struct Known<'a> {
    /// Those that compiled (a broken one already has its own error).
    compiled: &'a BTreeMap<&'a str, Arc<Redactor>>,
    /// Every defined name.
    defined: BTreeSet<&'a str>,
}

fn purpose(
    name: &str,
    d: &Defined<'_, RawPurpose>,
    redactors: &Known<'_>,
    errors: &mut BTreeSet<LoadError>,
) -> Option<Purpose> {
    let p = d.item;
    let file = d.file;
    let before = errors.len();
    // One grammar for purpose names everywhere (X-Purpose, tokens' claims, the consent API).
    if crate::consent::validate_purpose(name).is_err() {
        errors.insert(LoadError::at(
            file,
            d.key,
            format!(
                "purpose name \"{name}\" must be 1 to 64 lower-case letters, digits and _, starting with a letter (the form X-Purpose accepts)"
            ),
        ));
    }
    let consent = match (p.basis, &p.consent) {
        (Basis::Consent, c) => Some(c.as_ref().map_or(ConsentMode::OptIn, |c| c.value)),
        (basis, Some(c)) => {
            errors.insert(LoadError::at(
                file,
                c.referenced,
                format!(
                    "purpose \"{name}\" sets consent, but its basis is {}; consent applies only with basis: consent",
                    basis.as_str()
                ),
            ));
            None
        }
        (_, None) => None,
    };
    if let Some(g) = &p.gpc_opt_out
        && p.basis != Basis::Consent
        && g.value
    {
        errors.insert(LoadError::at(
                file,
                g.referenced,
                format!(
                    "purpose \"{name}\" sets gpc_opt_out, but its basis is {}; gpc_opt_out applies only with basis: consent",
                    p.basis.as_str()
                ),
            ));
    }
    let (fields, filter) = match &p.fields {
        None => {
            errors.insert(LoadError::at(
                file,
                d.key,
                format!(
                    "purpose \"{name}\" needs a fields list: allow: [...] to keep only those fields, or deny: [...] to remove them"
                ),
            ));
            (FieldList::Deny(Vec::new()), FieldFilter::KeepAll)
        }
        Some(f) => match (&f.value.allow, &f.value.deny) {
            (Some(_), Some(_)) => {
                errors.insert(LoadError::at(
                    file,
                    f.referenced,
                    format!("purpose \"{name}\" has both allow and deny lists; keep one"),
                ));
                (FieldList::Deny(Vec::new()), FieldFilter::KeepAll)
            }
            (None, None) => {
                errors.insert(LoadError::at(
                    file,
                    f.referenced,
                    format!("purpose \"{name}\" has an empty fields entry; add allow: [...] or deny: [...]"),
                ));
                (FieldList::Deny(Vec::new()), FieldFilter::KeepAll)
            }
            (Some(a), None) => {
                let parsed = paths(name, file, a, errors).unwrap_or_default();
                (
                    FieldList::Allow(a.iter().map(|s| s.value.clone()).collect()),
                    FieldFilter::Allow(parsed),
                )
            }
            (None, Some(dl)) => {
                let parsed = paths(name, file, dl, errors).unwrap_or_default();
                (
                    FieldList::Deny(dl.iter().map(|s| s.value.clone()).collect()),
                    FieldFilter::Deny(parsed),
                )
            }
        },
    };
    let mut rules = Vec::new();
    let mut field_rules = Vec::new();
    let mut text = Vec::new();
    for rule in &p.redact {
        let r = &rule.value;
        match (&r.fields, &r.with, &r.text) {
            (Some(fl), Some(with), None) => {
                let red = lookup(name, file, with, redactors, errors);
                let fp = paths(name, file, fl, errors);
                if let (Some(red), Some(fp)) = (red, fp) {
                    field_rules.push(FieldRule {
                        paths: fp,
                        redactor: red,
                    });
                }
                rules.push(RedactRule::Fields {
                    fields: fl.iter().map(|s| s.value.clone()).collect(),
                    with: with.value.clone(),
                });
            }
            (None, None, Some(names)) => {
                text.extend(
                    names
                        .iter()
                        .filter_map(|n| lookup(name, file, n, redactors, errors)),
                );
                rules.push(RedactRule::Text(
                    names.iter().map(|s| s.value.clone()).collect(),
                ));
            }
            _ => {
                errors.insert(LoadError::at(
                    file,
                    rule.referenced,
                    format!(
                        "purpose \"{name}\" has a redact rule that is neither \"fields: [...] with: <redactor>\" nor \"text: [<redactors>]\""
                    ),
                ));
            }
        }
    }
    let purpose_category = categories(name, "purpose_category", file, &p.purpose_category, errors);
    let pii_category = categories(name, "pii_category", file, &p.pii_category, errors);
    let spi_category = categories(name, "spi_category", file, &p.spi_category, errors);
    if let Some(t) = &p.third_party
        && !label_ok(&t.value)
    {
        errors.insert(LoadError::at(
            file,
            t.referenced,
            format!("purpose \"{name}\" has a third_party that is {LABEL_RULE}"),
        ));
    }
    if errors.len() != before {
        return None;
    }
    Some(Purpose {
        name: name.to_owned(),
        basis: p.basis,
        consent,
        gpc_opt_out: p.gpc_opt_out.as_ref().is_some_and(|g| g.value),
        mode: p.mode,
        fields,
        redact: rules,
        purpose_category,
        pii_category,
        spi_category,
        third_party: p.third_party.as_ref().map(|t| t.value.clone()),
        plan: Plan::new(filter, field_rules, text),
    })
}

/// Longest category or third-party label.
const MAX_LABEL_LEN: usize = 128;
const LABEL_RULE: &str =
    "not 1 to 128 characters of printable text (no control characters, not only spaces)";

fn label_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_LABEL_LEN && !s.chars().any(char::is_control)
}

/// `purpose_category` / `pii_category`: when given, a non-empty list of distinct labels.
fn categories(
    purpose: &str,
    key: &str,
    file: &str,
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    errors: &mut BTreeSet<LoadError>,
) -> Vec<String> {
    let Some(list) = list else {
        return Vec::new();
    };
    if list.value.is_empty() {
        errors.insert(LoadError::at(
            file,
            list.referenced,
            format!("purpose \"{purpose}\" has an empty {key}; list at least one category or remove the key"),
        ));
    }
    let mut seen = BTreeSet::new();
    for item in &list.value {
        if !label_ok(&item.value) {
            errors.insert(LoadError::at(
                file,
                item.referenced,
                format!("purpose \"{purpose}\" has a {key} entry that is {LABEL_RULE}"),
            ));
        } else if !seen.insert(item.value.as_str()) {
            errors.insert(LoadError::at(
                file,
                item.referenced,
                format!("purpose \"{purpose}\" lists {key} \"{}\" twice", item.value),
            ));
        }
    }
    list.value.iter().map(|i| i.value.clone()).collect()
}

/// `receipt_retention`: a duration of at least one day.
fn receipt_retention(
    file: &str,
    r: &Spanned<String>,
    errors: &mut BTreeSet<LoadError>,
) -> Option<std::time::Duration> {
    match humantime::parse_duration(r.value.trim()) {
        Ok(d) if d >= std::time::Duration::from_secs(86_400) => Some(d),
        Ok(_) => {
            errors.insert(LoadError::at(
                file,
                r.referenced,
                "receipt_retention must be at least 1 day (receipts are proof of consent); write it like \"6years\" or \"400d\"",
            ));
            None
        }
        Err(_) => {
            errors.insert(LoadError::at(
                file,
                r.referenced,
                format!(
                    "receipt_retention \"{}\" is not a duration; write it like \"6years\" or \"400d\"",
                    r.value
                ),
            ));
            None
        }
    }
}

fn lookup(
    purpose: &str,
    file: &str,
    n: &Spanned<String>,
    redactors: &Known<'_>,
    errors: &mut BTreeSet<LoadError>,
) -> Option<Arc<Redactor>> {
    let found = redactors.compiled.get(n.value.as_str()).cloned();
    if found.is_none() && !redactors.defined.contains(n.value.as_str()) {
        let known: Vec<&str> = redactors.defined.iter().copied().collect();
        errors.insert(LoadError::at(
            file,
            n.referenced,
            format!(
                "purpose \"{purpose}\" uses redactor \"{}\", which is not defined (defined: {})",
                n.value,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    found
}
