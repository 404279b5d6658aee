//! Computing a plan: the account's monitors sorted by owner, each desired monitor matched with the remote
//! monitor it manages (by address tag, `moved` block, `import` block or adoption), the changes, and what
//! is left to delete.

use super::{id_of, name_of, rel_file, Create, Delete, Other, Plan, Replace, Update, Why};
use crate::load::Loaded;
use crate::model::{self, address_tag, canon_type, Monitor, TAG_ADDRESS, TAG_MANAGED, TAG_PROJECT};
use crate::query;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The account's monitors as the matching sees them.
struct Pool<'a> {
    /// This project's monitors by address tag, oldest first; a matched one is taken out.
    mine: HashMap<String, Vec<&'a Value>>,
    /// Monitors without kelpie's tags: candidates for adoption.
    unmanaged: Vec<&'a Value>,
    by_id: HashMap<i64, &'a Value>,
    /// Ids adopted by an import block or by name and query.
    adopted: HashSet<i64>,
}

/// Computes the plan from the loaded files and the account's monitors.
pub fn compute(
    loaded: &Loaded,
    remote: &[Value],
    project: &str,
    dir: &Path,
    no_delete: bool,
) -> Plan {
    let mut plan = Plan {
        project: project.to_string(),
        listed_all: true,
        ..Plan::default()
    };
    let mut pool = sort_remote(remote, project, &mut plan);
    // Ids of this project's monitors by address, for `datadog_monitor.x.id` in composite queries.
    let ids: HashMap<String, i64> = pool
        .mine
        .iter()
        .filter_map(|(k, v)| v.first().map(|m| (k.clone(), id_of(m))))
        .collect();
    let moved_to: HashMap<String, String> = loaded
        .moved
        .iter()
        .map(|mv| (address_tag(&mv.to), mv.from.clone()))
        .collect();
    let imports: HashMap<String, i64> = loaded
        .imports
        .iter()
        .map(|i| (address_tag(&i.to), i.id))
        .collect();
    for d in &loaded.monitors {
        let resolved;
        let d = match model::resolve_refs(&d.query, &ids) {
            (q, _) if q != d.query => {
                resolved = Monitor {
                    query: q,
                    ..d.clone()
                };
                &resolved
            }
            _ => d,
        };
        let tag = address_tag(&d.address);
        let payload = d.payload(project, &rel_file(dir, &d.pos.file));
        let Some((remote_m, why)) = pool.find(d, &tag, &moved_to, &imports, project, &mut plan)
        else {
            continue;
        };
        plan_change(&mut plan, d, payload, remote_m, why);
    }
    plan.unmanaged = pool
        .unmanaged
        .iter()
        .filter(|m| !pool.adopted.contains(&id_of(m)))
        .map(|m| Other {
            id: id_of(m),
            name: name_of(m),
            project: None,
        })
        .collect();
    plan.unmanaged_count = plan.unmanaged.len();
    plan.other_projects_count = plan.other_projects.len();
    if !no_delete {
        plan_deletes(&mut plan, loaded, &pool);
    }
    plan
}

/// Sorts the account's monitors by owner: this project's (by address tag) and the unmanaged ones into the
/// pool, those of other kelpie projects into the plan.
fn sort_remote<'a>(remote: &'a [Value], project: &str, plan: &mut Plan) -> Pool<'a> {
    let mut mine: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut unmanaged: Vec<&Value> = Vec::new();
    for m in remote {
        let tags = model::remote_tags(m);
        if !tags.iter().any(|t| t == TAG_MANAGED) {
            unmanaged.push(m);
            continue;
        }
        let p = model::tag_value(&tags, TAG_PROJECT);
        if p.as_deref() != Some(project) {
            plan.other_projects.push(Other {
                id: id_of(m),
                name: name_of(m),
                project: p,
            });
            continue;
        }
        plan.managed += 1;
        let addr = model::tag_value(&tags, TAG_ADDRESS).unwrap_or_default();
        mine.entry(addr).or_default().push(m);
    }
    for v in mine.values_mut() {
        v.sort_by_key(|m| id_of(m));
    }
    Pool {
        mine,
        unmanaged,
        by_id: remote.iter().map(|m| (id_of(m), m)).collect(),
        adopted: HashSet::new(),
    }
}

impl<'a> Pool<'a> {
    /// The remote monitor that `d` (with address tag `tag`) manages, if any, and why; `None` if its import
    /// block cannot be followed (the error is in the plan).
    fn find(
        &mut self,
        d: &Monitor,
        tag: &str,
        moved_to: &HashMap<String, String>,
        imports: &HashMap<String, i64>,
        project: &str,
        plan: &mut Plan,
    ) -> Option<(Option<&'a Value>, Why)> {
        if let Some(m) = self
            .mine
            .get_mut(tag)
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        {
            return Some((Some(m), Why::Drift));
        }
        if let Some((from, m)) = moved_to.get(tag).and_then(|from| {
            let ft = address_tag(from);
            self.mine
                .get_mut(&ft)
                .and_then(|v| (!v.is_empty()).then(|| (from.clone(), v.remove(0))))
        }) {
            return Some((Some(m), Why::Moved { from }));
        }
        if let Some(id) = imports.get(tag) {
            return self.import(d, *id, project, plan);
        }
        Some(self.adopt_same(d, plan))
    }

    /// The monitor an `import` block names, unless it does not exist or another project manages it.
    fn import(
        &mut self,
        d: &Monitor,
        id: i64,
        project: &str,
        plan: &mut Plan,
    ) -> Option<(Option<&'a Value>, Why)> {
        let Some(m) = self.by_id.get(&id).copied() else {
            plan.errors.push(format!(
                "{}: import: monitor {id} does not exist in the account",
                d.address
            ));
            return None;
        };
        let tags = model::remote_tags(m);
        let managed = tags.iter().any(|t| t == TAG_MANAGED);
        let p = model::tag_value(&tags, TAG_PROJECT);
        if managed && p.as_deref() != Some(project) {
            plan.errors.push(format!(
                "{}: import: monitor {id} is managed by kelpie project \"{}\"; remove it there first",
                d.address,
                p.unwrap_or_default()
            ));
            return None;
        }
        if managed {
            // Already ours under another address: take it from the pool so it is not deleted.
            let at = model::tag_value(&tags, TAG_ADDRESS).unwrap_or_default();
            if let Some(v) = self.mine.get_mut(&at) {
                v.retain(|x| id_of(x) != id);
            }
        }
        self.adopted.insert(id);
        Some((
            Some(m),
            Why::Adopt {
                by: format!("import block (id {id})"),
            },
        ))
    }

    /// The unmanaged monitor with the same name, type and query as `d`, if exactly one has them.
    fn adopt_same(&mut self, d: &Monitor, plan: &mut Plan) -> (Option<&'a Value>, Why) {
        let want_q = query::normalize(&d.query);
        let cands: Vec<&'a Value> = self
            .unmanaged
            .iter()
            .copied()
            .filter(|m| !self.adopted.contains(&id_of(m)))
            .filter(|m| name_of(m) == d.name.trim())
            .filter(|m| {
                query::normalize(m.get("query").and_then(Value::as_str).unwrap_or("")) == want_q
            })
            .filter(|m| {
                canon_type(m.get("type").and_then(Value::as_str).unwrap_or(""))
                    == canon_type(&d.mtype)
            })
            .collect();
        match cands.len() {
            1 => {
                self.adopted.insert(id_of(cands[0]));
                (
                    Some(cands[0]),
                    Why::Adopt {
                        by: "same name and query".into(),
                    },
                )
            }
            0 => (None, Why::Drift),
            n => {
                plan.warnings.push(format!(
                    "{}: {n} unmanaged monitors have this name and query; creating a new one (add an import block to adopt one)",
                    d.address
                ));
                (None, Why::Drift)
            }
        }
    }
}

/// Files what the desired monitor `d` needs: a create, a replacement (the type changed, which Datadog
/// cannot do in place), an update, or nothing.
fn plan_change(plan: &mut Plan, d: &Monitor, payload: Value, remote: Option<&Value>, why: Why) {
    let Some(m) = remote else {
        plan.create.push(Create {
            address: d.address.clone(),
            body: payload,
        });
        return;
    };
    let rtype = m.get("type").and_then(Value::as_str).unwrap_or("");
    if canon_type(rtype) != canon_type(&d.mtype) {
        plan.replace.push(Replace {
            address: d.address.clone(),
            id: id_of(m),
            from_type: rtype.to_string(),
            body: payload,
        });
        return;
    }
    let changes = model::diff(d, &payload, m);
    if changes.is_empty() && why == Why::Drift {
        plan.unchanged += 1;
    } else {
        plan.update.push(Update {
            address: d.address.clone(),
            id: id_of(m),
            why,
            changes,
            body: update_body(&payload, m),
        });
    }
}

/// This project's monitors that no file matched (nor adoption took), by address then id.
fn plan_deletes(plan: &mut Plan, loaded: &Loaded, pool: &Pool<'_>) {
    let desired_force: HashMap<String, bool> = loaded
        .monitors
        .iter()
        .map(|d: &Monitor| (address_tag(&d.address), d.force_delete))
        .collect();
    let mut left: Vec<(&String, &Value)> = pool
        .mine
        .iter()
        .flat_map(|(k, v)| v.iter().map(move |m| (k, *m)))
        .collect();
    left.sort_by_key(|(k, m)| ((*k).clone(), id_of(m)));
    for (addr, m) in left {
        if pool.adopted.contains(&id_of(m)) {
            continue;
        }
        plan.delete.push(Delete {
            address: addr.clone(),
            id: id_of(m),
            name: name_of(m),
            force: desired_force.get(addr).copied().unwrap_or(false),
        });
    }
}

/// The body of an update: the desired fields, with options merged over the remote ones so that options the
/// files do not manage (set in the UI) are kept.
fn update_body(payload: &Value, remote: &Value) -> Value {
    let mut body = payload.clone();
    if let (Some(ro), Some(Value::Object(bo))) = (
        remote.get("options").and_then(Value::as_object),
        body.get_mut("options"),
    ) {
        for (k, v) in ro {
            if !bo.contains_key(k) && !v.is_null() {
                bo.insert(k.clone(), v.clone());
            }
        }
    }
    body
}
