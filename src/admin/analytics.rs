//! `/api/v1/analytics`: a tenant's or an integration's numbers over the
//! last 7, 30 or 90 days, from the daily rollups the conversation actors
//! write with each turn (inbound, outbound, delivered, read), plus
//! conversation and takeover counts from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::AdminError;
use crate::clock::{now_ms, rfc3339};
use crate::conversation::EngineContext;
use crate::store::DailyCount;

const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Serialize)]
pub struct Analytics {
    pub tenant: Option<String>,
    pub integration: Option<String>,
    pub days: u32,
    pub inbound: u64,
    pub outbound: u64,
    pub delivered: u64,
    pub read: u64,
    /// delivered / outbound (0 when nothing was sent).
    pub delivery_rate: f64,
    /// read / outbound.
    pub read_rate: f64,
    pub daily: Vec<Day>,
    /// Conversations of these integrations, ever.
    pub conversations_total: u64,
    /// Of those, the ones with activity in the period.
    pub conversations_active: u64,
    /// Conversations a person has now.
    pub takeovers_active: u64,
}

#[derive(Debug, Serialize)]
pub struct Day {
    pub date: String,
    pub inbound: u64,
    pub outbound: u64,
}

/// The integrations a `tenant` / `integration` filter selects (`None`: no
/// filter). Unknown ids are a 404.
pub fn integrations_of(
    ctx: &EngineContext,
    tenant: Option<&str>,
    integration: Option<&str>,
) -> Result<Option<Vec<String>>, AdminError> {
    if let Some(t) = tenant {
        if !ctx.config.tenants.iter().any(|c| c.id == t) {
            return Err(AdminError::NotFound(format!("no tenant {t:?}")));
        }
    }
    if let Some(i) = integration {
        match ctx.integrations.get(i) {
            None => return Err(AdminError::NotFound(format!("no integration {i:?}"))),
            Some(c) if tenant.is_some_and(|t| c.tenant != t) => {
                return Err(AdminError::NotFound(format!(
                    "integration {i:?} does not belong to tenant {:?}",
                    tenant.unwrap_or_default()
                )))
            }
            Some(_) => return Ok(Some(vec![i.to_string()])),
        }
    }
    Ok(tenant.map(|t| {
        ctx.integrations
            .values()
            .iter()
            .filter(|i| i.tenant == t)
            .map(|i| i.id.clone())
            .collect()
    }))
}

/// `GET /analytics?tenant=&integration=&days=7|30|90`
pub async fn show(
    State(ctx): State<Arc<EngineContext>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Analytics>, AdminError> {
    let tenant = params.get("tenant").cloned();
    let integration = params.get("integration").cloned();
    let days = match params.get("days").map(String::as_str) {
        None | Some("7") => 7,
        Some("30") => 30,
        Some("90") => 90,
        Some(other) => {
            return Err(AdminError::BadRequest(format!(
                "days must be 7, 30 or 90, not {other:?}"
            )))
        }
    };
    let ids =
        integrations_of(&ctx, tenant.as_deref(), integration.as_deref())?.unwrap_or_else(|| {
            ctx.integrations
                .values()
                .iter()
                .map(|i| i.id.clone())
                .collect()
        });
    let now = now_ms();
    let today = DailyCount::day_of(now);
    let first_day = today.saturating_sub(days - 1);
    let mut by_day: BTreeMap<u32, DailyCount> = (first_day..=today)
        .map(|day| {
            (
                day,
                DailyCount {
                    day,
                    ..DailyCount::default()
                },
            )
        })
        .collect();
    for (_, count) in ctx.store.daily_counts(&ids, first_day).await? {
        if let Some(sum) = by_day.get_mut(&count.day) {
            sum.add(&count);
        }
    }
    let mut total = DailyCount::default();
    for c in by_day.values() {
        total.add(c);
    }
    let since = u64::from(first_day) * DAY_MS;
    let (conversations_total, conversations_active) =
        ctx.store.conversation_counts(&ids, since).await?;
    let takeovers_active = ctx.store.takeovers(&ids).await?.len() as u64;
    let rate = |n: u64| {
        if total.outbound == 0 {
            0.0
        } else {
            (n as f64 / total.outbound as f64 * 10_000.0).round() / 10_000.0
        }
    };
    Ok(Json(Analytics {
        tenant,
        integration,
        days,
        inbound: total.inbound,
        outbound: total.outbound,
        delivered: total.delivered,
        read: total.read,
        delivery_rate: rate(total.delivered),
        read_rate: rate(total.read),
        daily: by_day
            .values()
            .map(|c| Day {
                date: date_of(c.day),
                inbound: c.inbound,
                outbound: c.outbound,
            })
            .collect(),
        conversations_total,
        conversations_active,
        takeovers_active,
    }))
}

/// `YYYY-MM-DD` of a day number.
fn date_of(day: u32) -> String {
    let stamp = rfc3339(u64::from(day) * DAY_MS);
    stamp.split('T').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_render_as_dates() {
        assert_eq!(super::date_of(0), "1970-01-01");
        assert_eq!(super::date_of(20_414), "2025-11-22");
    }
}
