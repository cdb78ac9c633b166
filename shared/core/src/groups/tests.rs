use super::*;
use serde_json::json;

fn field_of(e: ApiError) -> String {
    assert_eq!(e.code(), ErrorCode::ValidationError);
    e.details()["field"].as_str().unwrap().to_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn group() -> Group {
    Group {
        jid: "120363000000000001@g.us".into(),
        name: "Team".into(),
        subject: "Team".into(),
        description: Some("old".into()),
        participant_count: 2,
        is_announce: false,
        is_locked: false,
        is_ephemeral: false,
        is_join_approval_required: false,
    }
}

#[test]
fn group_jids_are_normalized_and_nothing_else_is_one() {
    assert_eq!(
        validate_group_jid("120363000000000001@g.us").unwrap(),
        "120363000000000001@g.us"
    );
    assert_eq!(
        validate_group_jid("15551230001-1600000000@g.us").unwrap(),
        "15551230001-1600000000@g.us"
    );
    for bad in [
        "",
        "15551230001",
        "15551230001@s.whatsapp.net",
        "abc@g.us",
        "1@lid",
    ] {
        assert_eq!(
            field_of(validate_group_jid(bad).unwrap_err()),
            "group_jid",
            "{bad}"
        );
    }
}

#[test]
fn subjects_are_trimmed_and_bounded() {
    assert_eq!(validate_subject("  Lunch crew ").unwrap(), "Lunch crew");
    assert_eq!(
        validate_subject(&"é".repeat(100)).unwrap().chars().count(),
        100
    );
    for bad in ["", "   ", &"a".repeat(101)] {
        assert_eq!(field_of(validate_subject(bad).unwrap_err()), "subject");
    }
}

#[test]
fn descriptions_may_be_empty_and_are_bounded() {
    assert_eq!(validate_description(" hi ").unwrap(), "hi");
    assert_eq!(validate_description("").unwrap(), "");
    assert_eq!(validate_description(&"a".repeat(2048)).unwrap().len(), 2048);
    let e = validate_description(&"a".repeat(2049)).unwrap_err();
    assert_eq!(field_of(e), "description");
}

#[test]
fn only_whatsapps_timers_are_taken() {
    for ok in EPHEMERAL_SECS {
        assert_eq!(validate_ephemeral(ok).unwrap(), ok);
    }
    for bad in [1, 3600, 86_401, u32::MAX] {
        assert_eq!(
            field_of(validate_ephemeral(bad).unwrap_err()),
            "ephemeral_secs"
        );
    }
}

#[test]
fn participants_become_jids_in_the_order_given() {
    let given = strings(&[
        "+15551230002",
        "100000000000001@lid",
        "15551230003@s.whatsapp.net",
    ]);
    assert_eq!(
        validate_participants(&given).unwrap(),
        strings(&[
            "15551230002@s.whatsapp.net",
            "100000000000001@lid",
            "15551230003@s.whatsapp.net"
        ])
    );
    let most = vec!["15551230002".to_string(); 1]
        .into_iter()
        .chain((0..MAX_PARTICIPANTS - 1).map(|i| format!("1555124{i:04}")))
        .collect::<Vec<_>>();
    assert_eq!(
        validate_participants(&most).unwrap().len(),
        MAX_PARTICIPANTS
    );
}

#[test]
fn participant_lists_are_refused_on_the_list_or_the_entry() {
    assert_eq!(
        field_of(validate_participants(&[]).unwrap_err()),
        "participants"
    );
    let many: Vec<String> = (0..=MAX_PARTICIPANTS)
        .map(|i| format!("1555124{i:04}"))
        .collect();
    assert_eq!(
        field_of(validate_participants(&many).unwrap_err()),
        "participants"
    );
    for (list, field) in [
        (vec!["abc"], "participants[0]"),
        (
            vec!["15551230002", "120363000000000001@g.us"],
            "participants[1]",
        ),
        (vec!["15551230002", "+15551230002"], "participants[1]"),
        (
            vec!["15551230002", "15551230003", "15551230002@s.whatsapp.net"],
            "participants[2]",
        ),
    ] {
        let e = validate_participants(&strings(&list)).unwrap_err();
        assert_eq!(field_of(e), field, "{list:?}");
    }
}

#[test]
fn invite_codes_are_taken_bare_or_as_links() {
    for (given, code) in [
        ("AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv"),
        ("https://chat.whatsapp.com/AbC-d_9", "AbC-d_9"),
        (" AbC ", "AbC"),
    ] {
        assert_eq!(validate_invite_code(given).unwrap(), code);
    }
    for bad in [
        "",
        "https://chat.whatsapp.com/",
        "a b",
        "abc/def",
        &"a".repeat(65),
        "http://x/AbC",
    ] {
        assert_eq!(
            field_of(validate_invite_code(bad).unwrap_err()),
            "invite_code",
            "{bad}"
        );
    }
    assert_eq!(
        serde_json::to_value(Invite::of("AbC")).unwrap(),
        json!({"invite_code": "AbC", "invite_link": "https://chat.whatsapp.com/AbC"})
    );
}

#[test]
fn changes_need_one_field_and_each_is_checked() {
    let e = GroupChanges::default().validate().unwrap_err();
    assert_eq!(field_of(e), "subject");
    let subject = GroupChanges {
        subject: Some(" New ".into()),
        ..GroupChanges::default()
    };
    assert_eq!(subject.validate().unwrap().subject.as_deref(), Some("New"));
    for (changes, field) in [
        (
            GroupChanges {
                subject: Some("".into()),
                ..GroupChanges::default()
            },
            "subject",
        ),
        (
            GroupChanges {
                description: Some("a".repeat(2049)),
                ..GroupChanges::default()
            },
            "description",
        ),
        (
            GroupChanges {
                is_locked: Some(true),
                ephemeral_secs: Some(5),
                ..GroupChanges::default()
            },
            "ephemeral_secs",
        ),
    ] {
        assert_eq!(field_of(changes.validate().unwrap_err()), field);
    }
}

#[test]
fn changes_are_reported_as_subject_description_and_settings() {
    let all = GroupChanges {
        subject: Some("New".into()),
        description: Some("".into()),
        is_announce: Some(true),
        ephemeral_secs: Some(86_400),
        ..GroupChanges::default()
    };
    let reported = all.reported();
    let actions: Vec<_> = reported.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        actions,
        [
            GroupUpdateAction::Subject,
            GroupUpdateAction::Description,
            GroupUpdateAction::Settings
        ]
    );
    assert_eq!(
        serde_json::to_value(&reported[2].1).unwrap(),
        json!({"is_announce": true, "ephemeral_secs": 86400})
    );
    let only_locked = GroupChanges {
        is_locked: Some(false),
        ..GroupChanges::default()
    };
    assert_eq!(only_locked.reported().len(), 1);
    assert_eq!(only_locked.reported()[0].0, GroupUpdateAction::Settings);
}

#[test]
fn changes_apply_to_a_group() {
    let mut g = group();
    GroupChanges {
        subject: Some("New".into()),
        description: Some("".into()),
        is_locked: Some(true),
        ephemeral_secs: Some(604_800),
        is_join_approval_required: Some(true),
        ..GroupChanges::default()
    }
    .apply(&mut g);
    assert_eq!((g.subject.as_str(), g.name.as_str()), ("New", "New"));
    assert_eq!(g.description, None);
    assert!(g.is_locked && g.is_ephemeral && g.is_join_approval_required && !g.is_announce);
    GroupChanges {
        ephemeral_secs: Some(0),
        description: Some("d".into()),
        ..GroupChanges::default()
    }
    .apply(&mut g);
    assert!(!g.is_ephemeral);
    assert_eq!(g.description.as_deref(), Some("d"));
}

#[test]
fn participants_carry_their_phone_number_when_their_jid_has_one() {
    let p = Participant::member("15551230002@s.whatsapp.net", false, true);
    assert!(p.is_admin && p.is_super_admin);
    assert_eq!(p.phone_number.as_deref(), Some("15551230002"));
    assert_eq!(
        Participant::member("100000000000001@lid", true, false).phone_number,
        None
    );
    assert_eq!(
        phone_of("15551230002:3@s.whatsapp.net").as_deref(),
        Some("15551230002")
    );
}

#[test]
fn each_participant_action_is_reported_as_its_own_update() {
    use GroupUpdateAction as U;
    use ParticipantAction as A;
    for (a, u) in [
        (A::Add, U::ParticipantsAdded),
        (A::Remove, U::ParticipantsRemoved),
        (A::Promote, U::Promoted),
        (A::Demote, U::Demoted),
    ] {
        assert_eq!(a.update_action(), u);
    }
}

#[test]
fn requests_answers_and_updates_have_a_stable_wire_form() {
    let r = GroupRequest::Participants {
        group_jid: "120363000000000001@g.us".into(),
        action: ParticipantAction::Promote,
        participants: strings(&["15551230002@s.whatsapp.net"]),
    };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v,
        json!({"op": "participants", "group_jid": "120363000000000001@g.us", "action": "promote",
            "participants": ["15551230002@s.whatsapp.net"]})
    );
    assert_eq!(serde_json::from_value::<GroupRequest>(v).unwrap(), r);
    let results = GroupAnswer::Results(vec![
        ParticipantResult::done("15551230002@s.whatsapp.net"),
        ParticipantResult::refused("15550001234@s.whatsapp.net", ErrorCode::NotFound, "no"),
    ]);
    let v = serde_json::to_value(&results).unwrap();
    assert_eq!(
        v["value"][1],
        json!({"jid": "15550001234@s.whatsapp.net", "ok": false,
            "error": {"code": "not_found", "message": "no"}})
    );
    assert_eq!(serde_json::from_value::<GroupAnswer>(v).unwrap(), results);
    let update = GroupUpdate {
        group_jid: "120363000000000001@g.us".into(),
        action: GroupUpdateAction::Subject,
        participants: vec![],
        by: None,
        changes: GroupChanges {
            subject: Some("New".into()),
            ..GroupChanges::default()
        },
    };
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({"group_jid": "120363000000000001@g.us", "action": "subject", "participants": [],
            "by": null, "subject": "New"})
    );
}

fn reported(
    action: GroupUpdateAction,
    participants: &[&str],
    changes: GroupChanges,
) -> GroupUpdate {
    GroupUpdate {
        group_jid: "120363000000000001@g.us".into(),
        action,
        participants: strings(participants),
        by: Some("+15551230002".into()),
        changes,
    }
}

#[test]
fn a_reported_change_is_normalized() {
    use GroupUpdateAction as A;
    let u = reported(
        A::ParticipantsAdded,
        &["15551230003"],
        GroupChanges::default(),
    )
    .validate()
    .unwrap();
    assert_eq!(u.participants, ["15551230003@s.whatsapp.net"]);
    assert_eq!(u.by.as_deref(), Some("15551230002@s.whatsapp.net"));
    let subject = GroupChanges {
        subject: Some(" New ".into()),
        ..GroupChanges::default()
    };
    let u = reported(A::Created, &[], subject.clone())
        .validate()
        .unwrap();
    assert_eq!(u.changes.subject.as_deref(), Some("New"));
    let settings = GroupChanges {
        is_locked: Some(true),
        ..GroupChanges::default()
    };
    assert!(reported(A::Settings, &[], settings).validate().is_ok());
    let anonymous = GroupUpdate {
        by: None,
        ..reported(A::Left, &["15551230003"], GroupChanges::default())
    };
    assert_eq!(anonymous.validate().unwrap().by, None);
}

#[test]
fn a_reported_change_is_refused_on_the_field_it_gets_wrong() {
    use GroupUpdateAction as A;
    let none = GroupChanges::default;
    let subject = |s: &str| GroupChanges {
        subject: Some(s.into()),
        ..GroupChanges::default()
    };
    for (update, field) in [
        (
            GroupUpdate {
                group_jid: "15551230001".into(),
                ..reported(A::Left, &["15551230003"], none())
            },
            "group_jid",
        ),
        (reported(A::Promoted, &[], none()), "participants"),
        (reported(A::Demoted, &["x"], none()), "participants[0]"),
        (
            reported(A::Subject, &["15551230003"], subject("a")),
            "participants",
        ),
        (reported(A::Subject, &[], none()), "subject"),
        (reported(A::Subject, &[], subject("")), "subject"),
        (reported(A::Description, &[], subject("a")), "subject"),
        (reported(A::Settings, &[], none()), "is_announce"),
        (
            reported(A::ParticipantsAdded, &["15551230003"], subject("a")),
            "subject",
        ),
        (
            GroupUpdate {
                by: Some("120363000000000001@g.us".into()),
                ..reported(A::Left, &["15551230003"], none())
            },
            "by",
        ),
    ] {
        let e = update.clone().validate().unwrap_err();
        assert_eq!(field_of(e), field, "{update:?}");
    }
}

#[test]
fn an_answer_of_another_kind_is_an_internal_error() {
    let e = GroupAnswer::Done.into_group().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InternalError);
    assert!(GroupAnswer::Invite(Invite::of("a")).into_results().is_err());
    assert!(GroupAnswer::Results(vec![]).into_done().is_err());
    GroupAnswer::Done.into_done().unwrap();
    assert_eq!(
        GroupAnswer::Invite(Invite::of("a")).into_invite().unwrap(),
        Invite::of("a")
    );
}

const ME: &str = "15551230001@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn info_with(members: &[&str]) -> GroupAnswer {
    GroupAnswer::Group(GroupInfo {
        group: group(),
        participants: members
            .iter()
            .map(|m| Participant::member(m, false, false))
            .collect(),
    })
}

#[test]
fn a_created_group_is_reported_with_its_members_and_subject() {
    let request = GroupRequest::Create {
        subject: "Team".into(),
        participants: strings(&["15551230002@s.whatsapp.net"]),
    };
    let members = [ME, "15551230002@s.whatsapp.net"];
    let reports = request.reports(&info_with(&members), ME);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(
        (r.group_jid.as_str(), r.action),
        (GROUP, GroupUpdateAction::Created)
    );
    assert_eq!(r.participants, strings(&members));
    assert_eq!(r.by.as_deref(), Some(ME));
    assert_eq!(r.changes.subject.as_deref(), Some("Team"));
}

#[test]
fn an_update_is_reported_change_by_change() {
    let changes = GroupChanges {
        subject: Some("New".into()),
        is_locked: Some(true),
        ..GroupChanges::default()
    };
    let request = GroupRequest::Update {
        group_jid: GROUP.into(),
        changes,
    };
    let reports = request.reports(&info_with(&[ME]), ME);
    let actions: Vec<_> = reports.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [GroupUpdateAction::Subject, GroupUpdateAction::Settings]
    );
    assert_eq!(reports[1].changes.is_locked, Some(true));
    assert!(reports.iter().all(|r| r.participants.is_empty()));
}

#[test]
fn a_participant_action_is_reported_for_those_it_was_done_for() {
    let request = GroupRequest::Participants {
        group_jid: GROUP.into(),
        action: ParticipantAction::Promote,
        participants: strings(&["15551230002@s.whatsapp.net", "15551230003@s.whatsapp.net"]),
    };
    let answer = GroupAnswer::Results(vec![
        ParticipantResult::done("15551230002@s.whatsapp.net"),
        ParticipantResult::refused("15551230003@s.whatsapp.net", ErrorCode::NotFound, "no"),
    ]);
    let reports = request.reports(&answer, ME);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].action, GroupUpdateAction::Promoted);
    assert_eq!(
        reports[0].participants,
        strings(&["15551230002@s.whatsapp.net"])
    );
    let nobody = GroupAnswer::Results(vec![ParticipantResult::refused(
        "15551230003@s.whatsapp.net",
        ErrorCode::NotFound,
        "no",
    )]);
    assert!(request.reports(&nobody, ME).is_empty());
}

#[test]
fn a_join_and_a_leave_are_reported_with_the_device() {
    let join = GroupRequest::Join {
        invite_code: "AbCdEfGhIjKlMnOpQrStUv".into(),
    };
    let reports = join.reports(&info_with(&[ME]), ME);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].group_jid.as_str(), reports[0].action),
        (GROUP, GroupUpdateAction::ParticipantsAdded)
    );
    assert_eq!(reports[0].participants, strings(&[ME]));
    let leave = GroupRequest::Leave {
        group_jid: GROUP.into(),
    };
    let reports = leave.reports(&GroupAnswer::Done, ME);
    assert_eq!(reports[0].action, GroupUpdateAction::Left);
    assert_eq!(reports[0].participants, strings(&[ME]));
}

#[test]
fn reads_and_invites_report_nothing() {
    let invite = GroupAnswer::Invite(Invite::of("AbCdEfGhIjKlMnOpQrStUv"));
    for (request, answer) in [
        (
            GroupRequest::Info {
                group_jid: GROUP.into(),
            },
            info_with(&[ME]),
        ),
        (
            GroupRequest::Invite {
                group_jid: GROUP.into(),
            },
            invite.clone(),
        ),
        (
            GroupRequest::RevokeInvite {
                group_jid: GROUP.into(),
            },
            invite,
        ),
    ] {
        assert!(request.reports(&answer, ME).is_empty(), "{request:?}");
    }
}
