//! Groups through the router: every refusal by field, across Apps and tenants, before the
//! device is connected; then what the sandbox does with each request, as `/sent` records it.

use super::*;

const TEAM: &str = "120363000000000001@g.us";
const ANNOUNCE: &str = "120363000000000403@g.us";

fn field(v: &Value) -> Option<&str> {
    v["error"]["details"]["field"].as_str()
}

impl Api {
    /// A connected device of the App of `token`, scanned as `wa_number`.
    async fn connected(&self, token: &str, name: &str, wa_number: &str) -> String {
        let id = id_of(&self.create(token, name).await);
        let (s, v) = self
            .call(
                "POST",
                &format!("/sandbox/devices/{id}/scan"),
                token,
                Some(json!({ "wa_number": wa_number })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.wait_status(token, &id, "connected").await;
        id
    }

    async fn sent_types(&self, token: &str, id: &str) -> Vec<String> {
        let (_, v) = self
            .call("GET", &format!("/sandbox/devices/{id}/sent"), token, None)
            .await;
        v["data"]["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_requests_are_refused_by_field_and_across_apps() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = id_of(&api.create(&t, "grouper").await);
    let base = format!("/devices/{id}/groups");
    let (s, v) = api.call("GET", &format!("{base}/{TEAM}"), &t, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "device_not_connected")
    );
    let (s, _) = api.scan(&t, &id, "ok").await;
    assert_eq!(s, StatusCode::OK);
    api.wait_status(&t, &id, "connected").await;

    let team = format!("{base}/{TEAM}");
    let many: Vec<String> = (0..257).map(|i| format!("1555124{i:04}")).collect();
    for (m, uri, body, wanted) in [
        (
            "POST",
            base.clone(),
            json!({"participants": ["15551230002"]}),
            "subject",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": " ", "participants": ["15551230002"]}),
            "subject",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "a".repeat(101), "participants": ["15551230002"]}),
            "subject",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "s", "participants": []}),
            "participants",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "s", "participants": many}),
            "participants",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "s", "participants": ["15551230002", "x"]}),
            "participants[1]",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "s", "participants": [TEAM]}),
            "participants[0]",
        ),
        (
            "POST",
            base.clone(),
            json!({"subject": "s", "participants": ["1"], "extra": 1}),
            "extra",
        ),
        (
            "GET",
            format!("{base}/15551230002"),
            Value::Null,
            "group_jid",
        ),
        ("GET", format!("{base}/abc@g.us"), Value::Null, "group_jid"),
        ("PATCH", team.clone(), json!({}), "subject"),
        (
            "PATCH",
            team.clone(),
            json!({"ephemeral_secs": 5}),
            "ephemeral_secs",
        ),
        (
            "PATCH",
            team.clone(),
            json!({"description": "a".repeat(2049)}),
            "description",
        ),
        (
            "PATCH",
            team.clone(),
            json!({"is_locked": "yes"}),
            "is_locked",
        ),
        (
            "POST",
            format!("{team}/participants"),
            json!({"action": "ban", "participants": ["1555123"]}),
            "action",
        ),
        (
            "POST",
            format!("{team}/participants"),
            json!({"action": "add", "participants": []}),
            "participants",
        ),
        (
            "POST",
            format!("{base}/join"),
            json!({"invite_code": "a b"}),
            "invite_code",
        ),
        ("POST", format!("{base}/join"), json!({}), "invite_code"),
        (
            "POST",
            format!("{base}/x@g.us/leave"),
            Value::Null,
            "group_jid",
        ),
        (
            "GET",
            "/devices/nope/groups/1@g.us".to_owned(),
            Value::Null,
            "device_id",
        ),
    ] {
        let body = (!body.is_null()).then(|| body.clone());
        let (s, v) = api.call(m, &uri, &t, body).await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (StatusCode::BAD_REQUEST, "validation_error", Some(wanted)),
            "{m} {uri}"
        );
    }

    let (_, sibling) = api.app("acme", "b").await;
    let (_, stranger) = api.app("globex", "g").await;
    let unknown = format!("/devices/{}/groups/{TEAM}", uuid::Uuid::now_v7());
    for (uri, token, status, wanted) in [
        (&team, &sibling, StatusCode::FORBIDDEN, "forbidden"),
        (&team, &stranger, StatusCode::NOT_FOUND, "not_found"),
        (&unknown, &t, StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, v) = api.call("GET", uri, token, None).await;
        assert_eq!((s, code(&v)), (status, wanted), "{uri}");
    }

    // Not an admin of the announcements group: every change is 403; not in a group: 404.
    let announce = format!("{base}/{ANNOUNCE}");
    for (m, uri, body) in [
        ("PATCH", announce.clone(), Some(json!({"subject": "mine"}))),
        (
            "POST",
            format!("{announce}/participants"),
            Some(json!({"action": "add", "participants": ["15551230002"]})),
        ),
        ("GET", format!("{announce}/invite"), None),
        ("POST", format!("{announce}/invite/revoke"), None),
    ] {
        let (s, v) = api.call(m, &uri, &t, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{m} {uri}"
        );
    }
    let elsewhere = format!("{base}/120363999999999999@g.us");
    for (m, uri) in [
        ("GET", elsewhere.clone()),
        ("POST", format!("{elsewhere}/leave")),
        ("GET", format!("{elsewhere}/invite")),
    ] {
        let (s, v) = api.call(m, &uri, &t, None).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{m} {uri}"
        );
    }
    let (s, v) = api
        .call(
            "POST",
            &format!("{base}/join"),
            &t,
            Some(json!({"invite_code": "NoSuchCode"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(
        api.sent_types(&t, &id).await.is_empty(),
        "nothing refused was done"
    );

    // A destroyed device: 410 on every group route.
    let doomed = id_of(&api.create(&t, "doomed").await);
    let (s, _) = api
        .call("DELETE", &format!("/devices/{doomed}"), &t, None)
        .await;
    assert!(s.is_success(), "{s}");
    let gone = format!("/devices/{doomed}/groups");
    for (m, uri, body) in [
        ("GET", gone.clone(), None),
        ("GET", format!("{gone}/{TEAM}"), None),
        (
            "POST",
            format!("{gone}/join"),
            Some(json!({"invite_code": "AbCdEfGhIjKlMnOpQrStUv"})),
        ),
        ("POST", format!("{gone}/{TEAM}/leave"), None),
    ] {
        let (s, v) = api.call(m, &uri, &t, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::GONE, "device_destroyed"),
            "{m} {uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_created_changed_shared_joined_and_left() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = api.connected(&t, "owner", "15551230001").await;
    let base = format!("/devices/{id}/groups");

    let (s, v) = api
        .call(
            "POST",
            &base,
            &t,
            Some(json!({"subject": " Lunch ", "participants": ["+15551230002", "15550001234"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let g = &v["data"]["group"];
    let jid = g["jid"].as_str().unwrap().to_owned();
    assert_eq!(
        (&g["subject"], &g["participant_count"]),
        (&json!("Lunch"), &json!(2))
    );
    assert_eq!(
        g["participants"],
        json!([
            {"jid": "15551230001@s.whatsapp.net", "phone_number": "15551230001", "is_admin": true, "is_super_admin": true},
            {"jid": "15551230002@s.whatsapp.net", "phone_number": "15551230002", "is_admin": false, "is_super_admin": false}
        ]),
        "a number not on WhatsApp is left out"
    );
    let group = format!("{base}/{jid}");
    let (s, v) = api.call("GET", &group, &t, None).await;
    assert_eq!(
        (s, &v["data"]["group"]["jid"]),
        (StatusCode::OK, &json!(jid))
    );
    let (_, v) = api.call("GET", &base, &t, None).await;
    assert_eq!(
        v["data"]["count"], 4,
        "the three groups every account starts in, and this one"
    );

    let (s, v) = api
        .call(
            "PATCH",
            &group,
            &t,
            Some(json!({"subject": "Lunch (Fridays)", "description": "Noon", "is_announce": true, "ephemeral_secs": 86400})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let g = &v["data"]["group"];
    assert_eq!(
        (
            &g["subject"],
            &g["description"],
            &g["is_announce"],
            &g["is_ephemeral"]
        ),
        (
            &json!("Lunch (Fridays)"),
            &json!("Noon"),
            &json!(true),
            &json!(true)
        )
    );

    let (s, v) = api
        .call(
            "POST",
            &format!("{group}/participants"),
            &t,
            Some(json!({"action": "add", "participants": ["15551230003", "15551230002", "15550001111"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["data"]["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"jid": "15551230003@s.whatsapp.net", "ok": true, "error": null})
    );
    assert_eq!(
        (
            &results[1]["ok"],
            &results[1]["error"]["code"],
            &results[2]["error"]["code"]
        ),
        (&json!(false), &json!("conflict"), &json!("not_found"))
    );
    let (_, v) = api
        .call(
            "POST",
            &format!("{group}/participants"),
            &t,
            Some(json!({"action": "promote", "participants": ["15551230003"]})),
        )
        .await;
    assert_eq!(v["data"]["results"][0]["ok"], true);
    let (_, v) = api.call("GET", &group, &t, None).await;
    assert_eq!(v["data"]["group"]["participants"][2]["is_admin"], true);

    let (s, v) = api.call("GET", &format!("{group}/invite"), &t, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let old = v["data"]["invite_code"].as_str().unwrap().to_owned();
    assert_eq!(
        v["data"]["invite_link"],
        format!("https://chat.whatsapp.com/{old}")
    );
    let (s, v) = api
        .call("POST", &format!("{group}/invite/revoke"), &t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new = v["data"]["invite_code"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    // Another account (another App) joins with the new code; the old one is dead.
    let (_, t2) = api.app("globex", "other").await;
    let joiner = api.connected(&t2, "joiner", "15551230009").await;
    let join = format!("/devices/{joiner}/groups/join");
    let (s, v) = api
        .call("POST", &join, &t2, Some(json!({"invite_code": old})))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let link = format!("https://chat.whatsapp.com/{new}");
    let (s, v) = api
        .call("POST", &join, &t2, Some(json!({"invite_code": link})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let joined = &v["data"]["group"];
    assert_eq!(
        (&joined["jid"], &joined["subject"]),
        (&json!(jid), &json!("Lunch (Fridays)"))
    );
    let me = joined["participants"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        me,
        json!({"jid": "15551230009@s.whatsapp.net", "phone_number": "15551230009", "is_admin": false, "is_super_admin": false})
    );
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/devices/{joiner}/groups/{jid}"),
            &t2,
            Some(json!({"subject": "mine"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "not an admin"
    );
    let leave = format!("/devices/{joiner}/groups/{jid}/leave");
    let (s, _) = api.call("POST", &leave, &t2, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call("POST", &leave, &t2, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "left already");

    assert_eq!(
        api.sent_types(&t, &id).await,
        [
            "group_create",
            "group_update",
            "group_participants",
            "group_participants",
            "group_invite_revoke"
        ]
    );
    assert_eq!(
        api.sent_types(&t2, &joiner).await,
        ["group_join", "group_leave"]
    );
    let (_, v) = api
        .call("GET", &format!("/sandbox/devices/{id}/sent"), &t, None)
        .await;
    let create = &v["data"]["sent"][0];
    assert_eq!(
        (&create["to"], &create["subject"], &create["participants"]),
        (
            &json!(jid),
            &json!("Lunch"),
            &json!(["15551230002@s.whatsapp.net", "15550001234@s.whatsapp.net"])
        )
    );
    assert_eq!(v["data"]["sent"][2]["action"], "add");
    assert_eq!(v["data"]["sent"][4]["invite_code"], json!(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_elsewhere_is_kept() {
    let api = api().await;
    let (_, t) = api.app("acme", "a").await;
    let id = api.connected(&t, "member", "15551230001").await;
    let route = format!("/sandbox/devices/{id}/group-event");
    let group = format!("/devices/{id}/groups/{TEAM}");

    for (body, wanted) in [
        (
            json!({"group_jid": "x", "action": "left", "participants": ["15551230002"]}),
            "group_jid",
        ),
        (json!({"group_jid": TEAM, "action": "kicked"}), "action"),
        (
            json!({"group_jid": TEAM, "action": "promoted"}),
            "participants",
        ),
        (json!({"group_jid": TEAM, "action": "subject"}), "subject"),
        (
            json!({"group_jid": TEAM, "action": "settings", "subject": "s"}),
            "subject",
        ),
        (
            json!({"group_jid": TEAM, "action": "left", "participants": ["1555123000"], "by": TEAM}),
            "by",
        ),
    ] {
        let (s, v) = api.call("POST", &route, &t, Some(body.clone())).await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (StatusCode::BAD_REQUEST, "validation_error", Some(wanted)),
            "{body}"
        );
    }
    let (s, v) = api
        .call(
            "POST",
            &route,
            &t,
            Some(json!({"group_jid": "120363999999999999@g.us", "action": "subject", "subject": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    let (s, v) = api
        .call(
            "POST",
            &route,
            &t,
            Some(json!({"group_jid": TEAM, "action": "participants_added", "participants": ["15551230005"], "by": "15551230002"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, _) = api
        .call(
            "POST",
            &route,
            &t,
            Some(json!({"group_jid": TEAM, "action": "subject", "subject": "Renamed", "by": "15551230002"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (_, v) = api.call("GET", &group, &t, None).await;
    let g = &v["data"]["group"];
    assert_eq!(
        (&g["subject"], &g["participant_count"]),
        (&json!("Renamed"), &json!(4))
    );

    let (s, _) = api
        .call(
            "POST",
            &route,
            &t,
            Some(json!({"group_jid": TEAM, "action": "participants_removed", "participants": ["15551230001"], "by": "15551230002"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, v) = api.call("GET", &group, &t, None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "not_found"),
        "removed from it"
    );
    assert!(
        api.sent_types(&t, &id).await.is_empty(),
        "made elsewhere: nothing sent"
    );
}

/// Every group route documents the refusals of a session request, under a unique id.
#[test]
fn group_routes_document_their_refusals() {
    let (_, doc) = OpenApiRouter::<wa_api::AppState>::new()
        .merge(crate::router())
        .split_for_parts();
    for (path, method, id, ok) in [
        ("/devices/{device_id}/groups", "get", "list_groups", "200"),
        ("/devices/{device_id}/groups", "post", "create_group", "201"),
        (
            "/devices/{device_id}/groups/{group_jid}",
            "get",
            "get_group",
            "200",
        ),
        (
            "/devices/{device_id}/groups/{group_jid}",
            "patch",
            "update_group",
            "200",
        ),
        (
            "/devices/{device_id}/groups/{group_jid}/participants",
            "post",
            "change_group_participants",
            "200",
        ),
        (
            "/devices/{device_id}/groups/{group_jid}/invite",
            "get",
            "get_group_invite",
            "200",
        ),
        (
            "/devices/{device_id}/groups/{group_jid}/invite/revoke",
            "post",
            "revoke_group_invite",
            "200",
        ),
        (
            "/devices/{device_id}/groups/join",
            "post",
            "join_group",
            "200",
        ),
        (
            "/devices/{device_id}/groups/{group_jid}/leave",
            "post",
            "leave_group",
            "204",
        ),
    ] {
        let v = serde_json::to_value(&doc.paths.paths[path]).unwrap();
        let mut statuses: Vec<_> = v[method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                ok, "400", "401", "403", "404", "409", "410", "502", "503", "504"
            ],
            "{method} {path}"
        );
        assert_eq!(v[method]["operationId"], id);
    }
}
