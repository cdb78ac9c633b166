use super::*;
use whatsapp_rust::IqError;
use whatsapp_rust::features::{GroupEphemeralSettings, ParticipantType};

const GROUP: &str = "120363000000000001@g.us";

fn participant(jid: &str, pn: Option<&str>, kind: ParticipantType) -> GroupParticipant {
    GroupParticipant {
        jid: jid.parse().unwrap(),
        phone_number: pn.map(|p| p.parse().unwrap()),
        lid: None,
        username: None,
        participant_type: kind,
        details: None,
    }
}

fn metadata() -> GroupMetadata {
    GroupMetadata {
        id: GROUP.parse().unwrap(),
        subject: "Team".into(),
        description: Some("Our team".into()),
        participants: vec![
            participant(
                "15551230001@s.whatsapp.net",
                None,
                ParticipantType::SuperAdmin,
            ),
            participant(
                "100000000000002@lid",
                Some("15551230002@s.whatsapp.net"),
                ParticipantType::Admin,
            ),
            participant("100000000000003@lid", None, ParticipantType::Member),
        ],
        is_announcement: true,
        ephemeral: Some(GroupEphemeralSettings {
            expiration: Some(86_400),
            trigger: None,
        }),
        membership_approval: true,
        ..GroupMetadata::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_group_carries_its_subject_settings_and_size() {
    let g = group_of(&metadata());
    assert_eq!(g.jid, GROUP);
    assert_eq!((g.name.as_str(), g.subject.as_str()), ("Team", "Team"));
    assert_eq!(g.description.as_deref(), Some("Our team"));
    assert_eq!(
        g.participant_count, 3,
        "counted when WhatsApp gives no size"
    );
    assert!(g.is_announce && !g.is_locked && g.is_ephemeral && g.is_join_approval_required);
    let sized = GroupMetadata {
        size: Some(40),
        ephemeral: Some(GroupEphemeralSettings {
            expiration: Some(0),
            trigger: None,
        }),
        ..metadata()
    };
    let g = group_of(&sized);
    assert_eq!(g.participant_count, 40);
    assert!(!g.is_ephemeral, "a zero timer is off");
}

#[test]
fn participants_are_named_by_phone_number_when_known() {
    let info = info_of(&metadata());
    let p = &info.participants;
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].jid, "15551230001@s.whatsapp.net");
    assert_eq!(p[0].phone_number.as_deref(), Some("15551230001"));
    assert!(p[0].is_admin && p[0].is_super_admin);
    assert_eq!(
        p[1].jid, "15551230002@s.whatsapp.net",
        "the LID's phone number"
    );
    assert!(p[1].is_admin && !p[1].is_super_admin);
    assert_eq!(p[2].jid, "100000000000003@lid");
    assert_eq!(p[2].phone_number, None);
    assert!(!p[2].is_admin);
}

#[test]
fn an_invite_is_its_code_and_link() {
    let code = "AbCdEfGhIjKlMnOpQrStUv";
    for link in [format!("https://chat.whatsapp.com/{code}"), code.to_owned()] {
        let invite = invite_of(&link);
        assert_eq!(invite.invite_code, code);
        assert_eq!(
            invite.invite_link,
            format!("https://chat.whatsapp.com/{code}")
        );
    }
}

#[test]
fn each_participant_gets_the_answer_given_for_it_in_the_order_asked() {
    let asked = strings(&[
        "15551230002@s.whatsapp.net",
        "15551230003@s.whatsapp.net",
        "15551230004@s.whatsapp.net",
    ]);
    let answered = vec![
        Answered {
            jids: strings(&["15551230003@s.whatsapp.net"]),
            error: Some("409".into()),
        },
        Answered {
            jids: strings(&["100000000000002@lid", "15551230002@s.whatsapp.net"]),
            error: None,
        },
    ];
    let results = results_for(ParticipantAction::Add, &asked, &answered);
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0],
        ParticipantResult::done("15551230002@s.whatsapp.net")
    );
    assert_eq!(results[1].jid, "15551230003@s.whatsapp.net");
    assert_eq!(results[1].error.as_ref().unwrap().code, ErrorCode::Conflict);
    let silent = results[2].error.as_ref().unwrap();
    assert_eq!(silent.code, ErrorCode::ProviderError);
    assert!(!results[2].ok);
}

#[test]
fn participant_refusals_follow_the_table() {
    use ParticipantAction::{Add, Promote, Remove};
    for (action, code, want) in [
        (Add, "409", ErrorCode::Conflict),
        (Promote, "409", ErrorCode::Conflict),
        (Add, "408", ErrorCode::Conflict),
        (Add, "404", ErrorCode::NotFound),
        (Remove, "404", ErrorCode::NotFound),
        (Add, "403", ErrorCode::Forbidden),
        (Remove, "403", ErrorCode::Forbidden),
        (Add, "401", ErrorCode::Forbidden),
        (Add, "500", ErrorCode::ProviderError),
        (Add, "", ErrorCode::ProviderError),
    ] {
        assert_eq!(
            participant_refusal(action, code).0,
            want,
            "{action:?} {code}"
        );
    }
    assert!(
        participant_refusal(Add, "404")
            .1
            .contains("not on WhatsApp")
    );
    assert!(
        participant_refusal(Remove, "404")
            .1
            .contains("not a participant")
    );
    assert!(participant_refusal(Add, "403").1.contains("invite link"));
    assert!(participant_refusal(Add, "500").1.contains("code 500"));
}

fn join() -> GroupRequest {
    GroupRequest::Join {
        invite_code: "AbCdEfGhIjKlMnOpQrStUv".into(),
    }
}

fn leave() -> GroupRequest {
    GroupRequest::Leave {
        group_jid: GROUP.into(),
    }
}

#[test]
fn group_refusals_follow_the_table() {
    let code_of = |code, request: &GroupRequest| group_refusal(code, request).map(|f| f.code);
    assert_eq!(code_of(403, &leave()), Some(ErrorCode::Forbidden));
    assert_eq!(code_of(401, &leave()), Some(ErrorCode::Forbidden));
    assert_eq!(code_of(404, &leave()), Some(ErrorCode::NotFound));
    assert_eq!(code_of(406, &leave()), None);
    assert_eq!(code_of(429, &leave()), None);
    assert_eq!(code_of(500, &leave()), None);
    assert_eq!(code_of(403, &join()), Some(ErrorCode::Forbidden));
    for code in [404, 406, 410] {
        assert_eq!(code_of(code, &join()), Some(ErrorCode::NotFound), "{code}");
    }
    assert_eq!(code_of(429, &join()), None);
    let not_admin = group_refusal(403, &leave()).unwrap();
    assert_eq!(not_admin, groups::not_admin());
    assert_eq!(
        group_refusal(404, &join()).unwrap(),
        groups::unknown_invite()
    );
    assert_eq!(
        group_refusal(404, &leave()).unwrap(),
        groups::not_a_member()
    );
}

fn rejected(code: u16) -> GroupError {
    GroupError::Iq(IqError::ServerError {
        code,
        text: "refused".into(),
        error_type: None,
        backoff: None,
    })
}

#[test]
fn library_failures_are_classified_for_the_request() {
    assert_eq!(
        classify_group_error(&rejected(403), &leave()).code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        classify_group_error(&rejected(429), &leave()).code,
        ErrorCode::ProviderRateLimit
    );
    assert_eq!(
        classify_group_error(&rejected(410), &join()).code,
        ErrorCode::NotFound
    );
    assert_eq!(
        classify_group_error(&GroupError::Iq(IqError::Timeout), &leave()).code,
        ErrorCode::UpstreamTimeout
    );
    assert_eq!(
        classify_group_error(&GroupError::DescriptionConflict, &leave()).code,
        ErrorCode::Conflict
    );
    assert_eq!(
        classify_group_error(&GroupError::InvalidRequest("x".into()), &leave()).code,
        ErrorCode::ProviderError
    );
}

#[test]
fn a_join_waiting_for_approval_is_a_conflict_that_says_so() {
    let f = pending_approval();
    assert_eq!(f.code, ErrorCode::Conflict);
    assert!(f.message.contains("approve"));
}
