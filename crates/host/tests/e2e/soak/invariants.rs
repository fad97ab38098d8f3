//! What must hold once the faults stopped and a sync round finished: each connection works or
//! is marked for reconnect exactly when its grant was revoked, its records are the emulator's
//! people, and every webhook event arrived once, with the events the faults call for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::fleet::{Fleet, Member};
use super::schedule::Injected;
use crate::support::{Received, World, events};
use crate::syncs::{live, records};

/// Checks at once while sweeping the fleet.
const AT_ONCE: usize = 16;

/// Every broken invariant, each naming the connection or event.
pub async fn check(
    world: &World,
    fleet: &Fleet,
    injected: &Injected,
    received: &Received,
) -> Vec<String> {
    let mut problems: Vec<String> = futures::stream::iter(&fleet.members)
        .map(|member| one_connection(world, member, injected))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<Vec<String>>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    problems.extend(marks(world, fleet, injected).await);
    problems.extend(webhooks_delivered(fleet, injected, received).await);
    let logs = world.host.logs();
    for (needle, what) in [
        (
            "could not be delivered",
            "a webhook event was not delivered",
        ),
        ("panicked", "the host panicked"),
        (
            world.demo.client_secret.as_str(),
            "the client secret is in the log",
        ),
    ] {
        if logs.contains(needle) {
            problems.push(format!("{what} (`{needle}` in the host's log)"));
        }
    }
    problems
}

/// A proxy call works (or is refused for reconnect, exactly when revoked), and the records are
/// the emulator's people.
async fn one_connection(world: &World, member: &Member, injected: &Injected) -> Vec<String> {
    let id = &member.connection_id;
    let mut problems = Vec::new();
    let (status, body) = world.host.proxy_get("microsoft", id, "/v1.0/me").await;
    let revoked = injected.revoked.contains(id);
    let works = status == StatusCode::OK && body["id"] == member.user_id.as_str();
    let refused = status == StatusCode::CONFLICT && body["error"]["code"] == "needs_reconnect";
    if (revoked && !refused) || (!revoked && !works) {
        problems.push(format!(
            "{id}: the last proxy call answered {status} {body} (revoked: {revoked})"
        ));
    }

    let people = world.control.people(&member.user_id).await.unwrap();
    let expected: BTreeMap<String, Value> = people
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                as_provider_maps(&serde_json::to_value(p).unwrap()),
            )
        })
        .collect();
    let stored: BTreeMap<String, Value> = live(&records(world, id, "").await)
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), as_stored(r)))
        .collect();
    if stored != expected {
        let missing = expected.keys().filter(|k| !stored.contains_key(*k)).count();
        let extra = stored.keys().filter(|k| !expected.contains_key(*k)).count();
        let differing = expected
            .iter()
            .find(|(k, v)| stored.get(*k).is_some_and(|s| s != *v))
            .map(|(k, v)| format!("; e.g. {k}: stored {}, emulator {v}", stored[k]));
        problems.push(format!(
            "{id}: records differ from the emulator's people: {missing} missing, {extra} extra{}",
            differing.unwrap_or_default()
        ));
    }
    problems
}

/// The fields of a Graph person (camelCase) the soak compares, named as the `Person` record
/// names them.
fn as_provider_maps(person: &Value) -> Value {
    let emails: Vec<&Value> = person["scoredEmailAddresses"]
        .as_array()
        .map(|list| list.iter().map(|e| &e["address"]).collect())
        .unwrap_or_default();
    json!({
        "display_name": person["displayName"],
        "given_name": person["givenName"],
        "surname": person["surname"],
        "job_title": person["jobTitle"],
        "company_name": person["companyName"],
        "department": person["department"],
        "office_location": person["officeLocation"],
        "user_principal_name": person["userPrincipalName"],
        "notes": person["personNotes"],
        "emails": emails,
    })
}

/// The same fields of a stored record.
fn as_stored(record: &Value) -> Value {
    let emails: Vec<&Value> = record["emails"]
        .as_array()
        .map(|list| list.iter().map(|e| &e["address"]).collect())
        .unwrap_or_default();
    let mut fields = json!({"emails": emails});
    for name in [
        "display_name",
        "given_name",
        "surname",
        "job_title",
        "company_name",
        "department",
        "office_location",
        "user_principal_name",
        "notes",
    ] {
        fields[name] = record[name].clone();
    }
    fields
}

/// `GET /connections`: marked for reconnect, with the provider's reason, exactly the revoked.
async fn marks(world: &World, fleet: &Fleet, injected: &Injected) -> Vec<String> {
    let listed = world
        .host
        .get_json("/connections?integration=microsoft")
        .await;
    let by_id: BTreeMap<&str, &Value> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["connection_id"].as_str().unwrap(), c))
        .collect();
    let mut problems = Vec::new();
    for member in &fleet.members {
        let id = member.connection_id.as_str();
        let Some(connection) = by_id.get(id) else {
            problems.push(format!("{id}: not in GET /connections"));
            continue;
        };
        let reason = connection["status_reason"].as_str().unwrap_or_default();
        let right = if injected.revoked.contains(id) {
            // AADSTS50173: the grant was revoked.
            connection["status"] == "needs_reconnect" && reason.contains("50173")
        } else {
            connection["status"] == "ok" && reason.is_empty()
        };
        if !right {
            problems.push(format!(
                "{id}: listed as {connection} (revoked: {})",
                injected.revoked.contains(id)
            ));
        }
    }
    problems
}

/// How long the events of the last runs and calls may take to arrive. Each is delivered in a
/// task of its own, retried after 0.5, 1, 2 and 4 s; on two cores shared with other tests, the
/// last round's thousand `sync.completed` events can take seconds.
const DELIVERY_WAIT: Duration = Duration::from_secs(30);
/// The least time given to the events of the last runs and calls.
const DELIVERY_SETTLE: Duration = Duration::from_secs(3);

/// [`webhooks`] once every event due has arrived, or as it stands after [`DELIVERY_WAIT`];
/// never sooner than [`DELIVERY_SETTLE`], so that an event delivered twice has the time to show.
async fn webhooks_delivered(
    fleet: &Fleet,
    injected: &Injected,
    received: &Received,
) -> Vec<String> {
    let deadline = Instant::now() + DELIVERY_WAIT;
    tokio::time::sleep(DELIVERY_SETTLE).await;
    loop {
        let problems = webhooks(fleet, injected, received);
        if problems.is_empty() || Instant::now() > deadline {
            return problems;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every event id once; one `connection.created` per connection; per connection, a
/// `connection.recovered` after each `connection.refresh_failed` but the revoked ones' last;
/// and a `sync.completed` run that finished after each connection's people last changed.
fn webhooks(fleet: &Fleet, injected: &Injected, received: &Received) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in received.lock().unwrap().iter() {
        *ids.entry(delivery.event_id.clone()).or_default() += 1;
    }
    for (id, count) in ids.iter().filter(|(_, count)| **count > 1) {
        problems.push(format!("event {id} was delivered {count} times"));
    }
    let per_connection = |kind: &str| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for event in events(received, kind) {
            let connection = event["data"]["connection_id"].as_str().unwrap_or_default();
            *counts.entry(connection.to_owned()).or_default() += 1;
        }
        counts
    };
    let created = per_connection("connection.created");
    let failed = per_connection("connection.refresh_failed");
    let recovered = per_connection("connection.recovered");
    for member in &fleet.members {
        let id = member.connection_id.as_str();
        let count = |counts: &BTreeMap<String, usize>| counts.get(id).copied().unwrap_or(0);
        if count(&created) != 1 {
            problems.push(format!(
                "{id}: {} connection.created events",
                count(&created)
            ));
        }
        let unrecovered = usize::from(injected.revoked.contains(id));
        if count(&failed) != count(&recovered) + unrecovered {
            problems.push(format!(
                "{id}: {} connection.refresh_failed and {} connection.recovered events (revoked: {})",
                count(&failed),
                count(&recovered),
                unrecovered == 1
            ));
        }
    }
    // A run that finished after the change, not one that started after it: a run already
    // under way when the people changed reads the changed page if it gets there afterwards, and
    // announces the change itself; the full run of the last round then finds nothing new and
    // sends no event.
    let completed = events(received, "sync.completed");
    for (id, changed_at) in &injected.churned {
        let synced = completed.iter().any(|event| {
            event["data"]["connection_id"] == id.as_str()
                && event["data"]["finished_at"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|finished| finished > *changed_at)
        });
        if !synced {
            problems.push(format!(
                "{id}: no sync.completed event for a run that finished after its people changed at {changed_at}"
            ));
        }
    }
    problems
}
