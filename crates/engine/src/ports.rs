//! Port allocation: cluster-unique service ports per app (stable across updates) and free
//! host ports per task from a configurable range.

use crate::EngineError;
use crate::state::State;
use model::{AppDefinition, DefinitionError};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::ops::RangeInclusive;

/// Fills service ports given as 0 (reusing the previous version's port for the same slot)
/// and rejects explicit ports that another app already uses.
pub(crate) fn assign_service_ports(
    st: &State,
    def: &mut AppDefinition,
    before: Option<&AppDefinition>,
    range: &RangeInclusive<u16>,
) -> Result<(), EngineError> {
    let mut used: BTreeSet<u32> = BTreeSet::new();
    let mut owner = std::collections::BTreeMap::new();
    for (id, app) in &st.apps {
        if id == &def.id {
            continue;
        }
        for p in app.def.service_ports() {
            used.insert(p);
            owner.insert(p, id.clone());
        }
    }
    let previous = before.map(|b| b.service_ports()).unwrap_or_default();
    let path = if def.uses_port_definitions() {
        "/portDefinitions"
    } else {
        "/container/portMappings"
    };
    // Explicit ports first, so automatic ones never take them.
    for p in def.service_ports() {
        if p != 0 {
            if let Some(other) = owner.get(&p) {
                return Err(DefinitionError::invalid(
                    path,
                    format!("Requested service port {p} conflicts with a service port in use by app {other}"),
                )
                .into());
            }
            used.insert(p);
        }
    }
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    for (i, slot) in def.service_ports_mut().into_iter().enumerate() {
        if *slot != 0 {
            continue;
        }
        let reuse = previous
            .get(i)
            .copied()
            .filter(|p| *p != 0 && !used.contains(p));
        let pick = reuse.or_else(|| (lo..=hi).find(|p| !used.contains(p)));
        let Some(p) = pick else {
            return Err(DefinitionError::invalid(
                path,
                format!("no free service port left in {lo}-{hi}"),
            )
            .into());
        };
        *slot = p;
        used.insert(p);
    }
    Ok(())
}

/// Picks `count` host ports that no task holds and that can be bound right now, scanning
/// the range round-robin from `cursor` so recently freed ports are not reused at once.
pub(crate) fn allocate_host_ports(
    st: &State,
    count: usize,
    range: &RangeInclusive<u16>,
    cursor: &mut u16,
) -> Option<Vec<u16>> {
    let held: BTreeSet<u16> = st
        .tasks
        .values()
        .flat_map(|t| t.host_ports.iter().copied())
        .collect();
    let (lo, hi) = (*range.start(), *range.end());
    let span = u32::from(hi - lo) + 1;
    let mut out = Vec::with_capacity(count);
    let start = (*cursor).clamp(lo, hi);
    for k in 0..span {
        if out.len() == count {
            break;
        }
        let p = lo + ((u32::from(start - lo) + k) % span) as u16;
        if !held.contains(&p) && !out.contains(&p) && bindable(p) {
            out.push(p);
        }
    }
    if out.len() < count {
        return None;
    }
    if let Some(last) = out.last() {
        *cursor = if *last >= hi { lo } else { last + 1 };
    }
    Some(out)
}

/// True when nothing listens on the port on any address.
pub(crate) fn bindable(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}
