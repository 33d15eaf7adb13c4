//! Webhook deliveries on both backends: group-committed intake and the pending queue.

mod common;

use common::Db;
use slipway_store::{DeliveryState, MasterKey, Recorded, Store};

async fn store(db: &Db) -> Store {
    let key = MasterKey::load_or_create(&db.key_path()).unwrap();
    Store::open(&db.url, &key).await.unwrap()
}

on_both_backends!(
    concurrent_deliveries_are_each_stored_once_byte_for_byte,
    deliveries_sent_to_two_servers_at_once_are_each_new_on_one_only,
    pending_deliveries_come_oldest_first_and_leave_when_finished_or_retried,
);

async fn concurrent_deliveries_are_each_stored_once_byte_for_byte(db: Db) {
    let store = store(&db).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every id is sent twice, concurrently: exactly one of the two is new.
            let id = format!("delivery-{}", i / 2);
            let payload = format!("{{\"n\": {i}, \"pad\": \"{}\"}}", "x".repeat(i * 10));
            let recorded = store
                .record_delivery(
                    &id,
                    "pull_request",
                    Some("acme/app"),
                    payload.as_bytes(),
                    true,
                )
                .await
                .unwrap();
            (id, payload, recorded)
        }));
    }
    let mut new = Vec::new();
    for task in tasks {
        let (id, payload, recorded) = task.await.unwrap();
        if recorded == Recorded::New {
            new.push((id, payload));
        }
    }
    assert_eq!(new.len(), 100);
    assert_eq!(store.count_deliveries().await.unwrap(), 100);
    for (id, payload) in new {
        let stored = store.delivery(&id).await.unwrap();
        assert_eq!(stored.payload, payload.as_bytes());
        assert_eq!(stored.state, DeliveryState::Pending);
    }
}

async fn deliveries_sent_to_two_servers_at_once_are_each_new_on_one_only(db: Db) {
    // Two stores on one database, as two servers behind a load balancer: each takes the same
    // deliveries at once (in opposite orders, so their batches share ids in both orders).
    let (a, b) = (store(&db).await, store(&db).await);
    let ids: Vec<String> = (0..150).map(|i| format!("delivery-{i:03}")).collect();
    let mut tasks = Vec::new();
    for (server, order) in [(&a, ids.clone()), (&b, ids.iter().rev().cloned().collect())] {
        for id in order {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let recorded = server
                    .record_delivery(&id, "pull_request", Some("acme/app"), b"{}", true)
                    .await
                    .unwrap();
                (id, recorded)
            }));
        }
    }
    let mut new = Vec::new();
    for task in tasks {
        let (id, recorded) = task.await.unwrap();
        if recorded == Recorded::New {
            new.push(id);
        }
    }
    new.sort();
    assert_eq!(
        new, ids,
        "each delivery is new exactly once across the two servers"
    );
    assert_eq!(a.count_deliveries().await.unwrap(), 150);
    assert_eq!(a.pending_deliveries(500).await.unwrap().len(), 150);
}

async fn pending_deliveries_come_oldest_first_and_leave_when_finished_or_retried(db: Db) {
    let store = store(&db).await;
    for id in ["a", "b", "c"] {
        store
            .record_delivery(id, "push", None, b"{}", true)
            .await
            .unwrap();
    }
    store
        .record_delivery("ping", "ping", None, b"{}", false)
        .await
        .unwrap();
    assert_eq!(store.pending_deliveries(10).await.unwrap(), ["a", "b", "c"]);
    store
        .finish_delivery("a", DeliveryState::Processed, "done")
        .await
        .unwrap();
    store
        .retry_delivery_later("b", "database busy")
        .await
        .unwrap();
    assert_eq!(
        store.pending_deliveries(10).await.unwrap(),
        ["c"],
        "b waits for its backoff"
    );
    for _ in 0..5 {
        store
            .retry_delivery_later("c", "still failing")
            .await
            .unwrap();
    }
    assert_eq!(
        store.delivery("c").await.unwrap().state,
        DeliveryState::Failed
    );
}
