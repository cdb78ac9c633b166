use super::*;
use wa_core::provider::SessionEvent;
use whatsapp_rust::chrono::{DateTime, Utc};
use whatsapp_rust::{Jid, NodeBuilder};

const GROUP: &str = "120363000000000001@g.us";
const AUTHOR: &str = "15551230001@s.whatsapp.net";

fn jid(s: &str) -> Jid {
    s.parse().unwrap()
}

fn member(j: &str, pn: Option<&str>) -> GroupParticipantInfo {
    GroupParticipantInfo {
        jid: jid(j),
        phone_number: pn.map(jid),
        display_name: None,
        r#type: None,
        lid: None,
        username: None,
        join_time: None,
        group_history_sent_state: None,
    }
}

fn event(action: N) -> LibGroupUpdate {
    LibGroupUpdate::builder()
        .group_jid(jid(GROUP))
        .participant(jid(AUTHOR))
        .timestamp(DateTime::<Utc>::UNIX_EPOCH)
        .is_lid_addressing_mode(false)
        .action(action)
        .build()
}

fn reported(action: N) -> GroupUpdate {
    update_of(&event(action)).expect("reported")
}

#[test]
fn a_created_group_is_reported_with_its_subject() {
    let raw = NodeBuilder::new("create")
        .children([NodeBuilder::new("group").attr("subject", "Team").build()])
        .build();
    let u = reported(N::Create { raw });
    assert_eq!(u.group_jid, GROUP);
    assert_eq!(u.action, GroupUpdateAction::Created);
    assert_eq!(u.changes.subject.as_deref(), Some("Team"));
    assert_eq!(u.by.as_deref(), Some(AUTHOR));
}

#[test]
fn participant_changes_name_participants_by_phone_number_when_known() {
    let participants = vec![
        member("100000000000002@lid", Some("15551230002@s.whatsapp.net")),
        member("100000000000003@lid", None),
    ];
    let u = reported(N::Add {
        participants: participants.clone(),
        reason: None,
    });
    assert_eq!(u.action, GroupUpdateAction::ParticipantsAdded);
    assert_eq!(
        u.participants,
        ["15551230002@s.whatsapp.net", "100000000000003@lid"]
    );
    let removed = reported(N::Remove {
        participants: participants.clone(),
        reason: None,
    });
    assert_eq!(removed.action, GroupUpdateAction::ParticipantsRemoved);
    let promoted = reported(N::Promote {
        participants: participants.clone(),
    });
    assert_eq!(promoted.action, GroupUpdateAction::Promoted);
    let demoted = reported(N::Demote { participants });
    assert_eq!(demoted.action, GroupUpdateAction::Demoted);
    assert_eq!(demoted.participants.len(), 2);
}

#[test]
fn the_author_removing_only_itself_left() {
    let u = reported(N::Remove {
        participants: vec![member(AUTHOR, None)],
        reason: None,
    });
    assert_eq!(u.action, GroupUpdateAction::Left);
    assert_eq!(u.participants, [AUTHOR]);
}

#[test]
fn the_author_is_named_by_phone_number_when_the_event_carries_it() {
    let e = LibGroupUpdate::builder()
        .group_jid(jid(GROUP))
        .participant(jid("100000000000001@lid"))
        .participant_pn(jid(AUTHOR))
        .timestamp(DateTime::<Utc>::UNIX_EPOCH)
        .is_lid_addressing_mode(true)
        .action(N::Unlocked)
        .build();
    assert_eq!(update_of(&e).unwrap().by.as_deref(), Some(AUTHOR));
    let anonymous = LibGroupUpdate::builder()
        .group_jid(jid(GROUP))
        .timestamp(DateTime::<Utc>::UNIX_EPOCH)
        .is_lid_addressing_mode(false)
        .action(N::Unlocked)
        .build();
    assert_eq!(update_of(&anonymous).unwrap().by, None);
}

#[test]
fn subject_and_description_changes_carry_the_new_text() {
    let u = reported(N::Subject {
        subject: "New".into(),
        subject_owner: None,
        subject_time: None,
    });
    assert_eq!(u.action, GroupUpdateAction::Subject);
    assert_eq!(u.changes.subject.as_deref(), Some("New"));
    let u = reported(N::Description {
        id: "1".into(),
        description: Some("About".into()),
    });
    assert_eq!(u.action, GroupUpdateAction::Description);
    assert_eq!(u.changes.description.as_deref(), Some("About"));
    let removed = reported(N::Description {
        id: "2".into(),
        description: None,
    });
    assert_eq!(removed.changes.description.as_deref(), Some(""));
}

#[test]
fn settings_carry_the_setting_changed() {
    let settings = |action| {
        let u = reported(action);
        assert_eq!(u.action, GroupUpdateAction::Settings);
        assert!(u.participants.is_empty());
        u.changes
    };
    assert_eq!(
        settings(N::Locked { threshold: None }).is_locked,
        Some(true)
    );
    assert_eq!(settings(N::Unlocked).is_locked, Some(false));
    assert_eq!(settings(N::Announce).is_announce, Some(true));
    assert_eq!(settings(N::NotAnnounce).is_announce, Some(false));
    let timer = N::Ephemeral {
        expiration: 604_800,
        trigger: None,
    };
    assert_eq!(settings(timer).ephemeral_secs, Some(604_800));
    let approval = N::MembershipApprovalMode { enabled: true };
    assert_eq!(settings(approval).is_join_approval_required, Some(true));
}

#[test]
fn other_group_actions_are_not_reported() {
    for action in [
        N::RevokeInvite,
        N::Invite { code: "x".into() },
        N::Suspended,
        N::Delete { reason: None },
        N::NoFrequentlyForwarded,
    ] {
        assert!(update_of(&event(action)).is_none());
    }
}

fn change(action: GroupUpdateAction, subject: Option<&str>) -> GroupUpdate {
    GroupUpdate {
        group_jid: GROUP.into(),
        action,
        participants: vec![],
        by: Some(AUTHOR.into()),
        changes: GroupChanges {
            subject: subject.map(str::to_owned),
            ..GroupChanges::default()
        },
    }
}

fn reports(own: &OwnChanges, source: Source, update: &GroupUpdate, now: Instant) -> bool {
    own.first_report(source, update, now).is_some()
}

fn settings(changes: GroupChanges) -> GroupUpdate {
    GroupUpdate {
        changes,
        ..change(GroupUpdateAction::Settings, None)
    }
}

#[test]
fn settings_changed_together_are_matched_one_by_one() {
    let now = Instant::now();
    let both = settings(GroupChanges {
        is_announce: Some(true),
        is_locked: Some(true),
        ..GroupChanges::default()
    });
    let announce = settings(GroupChanges {
        is_announce: Some(true),
        ..GroupChanges::default()
    });
    let locked = settings(GroupChanges {
        is_locked: Some(true),
        ..GroupChanges::default()
    });
    // The request first: WhatsApp's two notifications are its twins.
    let own = OwnChanges::default();
    assert_eq!(
        own.first_report(Source::Request, &both, now),
        Some(both.clone())
    );
    assert!(!reports(&own, Source::Notification, &announce, now));
    assert!(!reports(&own, Source::Notification, &locked, now));
    // One notification first: the request reports only the other setting.
    let own = OwnChanges::default();
    assert!(reports(&own, Source::Notification, &locked, now));
    assert_eq!(
        own.first_report(Source::Request, &both, now),
        Some(announce.clone())
    );
    assert!(!reports(&own, Source::Notification, &announce, now));
    // Both first: nothing is left to report.
    let own = OwnChanges::default();
    assert!(reports(&own, Source::Notification, &announce, now));
    assert!(reports(&own, Source::Notification, &locked, now));
    assert_eq!(own.first_report(Source::Request, &both, now), None);
}

#[test]
fn an_own_change_is_reported_by_whichever_source_comes_first() {
    let now = Instant::now();
    let subject = change(GroupUpdateAction::Subject, Some("New"));
    let own = OwnChanges::default();
    assert!(reports(&own, Source::Request, &subject, now));
    assert!(!reports(&own, Source::Notification, &subject, now));
    assert!(
        reports(&own, Source::Notification, &subject, now),
        "the twin was used up: a second notification is another change"
    );
    assert!(!reports(&own, Source::Request, &subject, now));
}

#[test]
fn own_changes_are_told_apart_by_group_action_and_fields() {
    let now = Instant::now();
    let own = OwnChanges::default();
    assert!(reports(
        &own,
        Source::Request,
        &change(GroupUpdateAction::Subject, Some("A")),
        now
    ));
    assert!(reports(
        &own,
        Source::Notification,
        &change(GroupUpdateAction::Subject, Some("B")),
        now
    ));
    let elsewhere = GroupUpdate {
        group_jid: "120363000000000002@g.us".into(),
        ..change(GroupUpdateAction::Subject, Some("A"))
    };
    assert!(reports(&own, Source::Notification, &elsewhere, now));
    let mut added = change(GroupUpdateAction::ParticipantsAdded, None);
    assert!(reports(&own, Source::Request, &added, now));
    added.participants = vec!["100000000000002@lid".into()];
    assert!(
        !reports(&own, Source::Notification, &added, now),
        "participants may be named differently"
    );
}

#[test]
fn an_own_change_waits_for_its_twin_only_so_long() {
    let now = Instant::now();
    let own = OwnChanges::default();
    let subject = change(GroupUpdateAction::Subject, Some("New"));
    assert!(reports(&own, Source::Request, &subject, now));
    let later = now + OWN_CHANGE_WINDOW;
    assert!(reports(&own, Source::Notification, &subject, later));
}

#[test]
fn a_group_change_by_this_account_is_its_own() {
    use super::super::events::{Context, Step, map_event};
    use whatsapp_rust::types::events::Event;
    let cx = Context {
        pn: Some(jid("15551230001:3@s.whatsapp.net")),
        ..Context::default()
    };
    let own = map_event(&Event::GroupUpdate(event(N::Unlocked)), &cx);
    assert!(matches!(own, Step::OwnGroupUpdate(_)), "{own:?}");
    let theirs = LibGroupUpdate::builder()
        .group_jid(jid(GROUP))
        .participant(jid("15551230009@s.whatsapp.net"))
        .timestamp(DateTime::<Utc>::UNIX_EPOCH)
        .is_lid_addressing_mode(false)
        .action(N::Unlocked)
        .build();
    let step = map_event(&Event::GroupUpdate(theirs), &cx);
    assert!(
        matches!(step, Step::Emit(SessionEvent::GroupUpdate(_))),
        "{step:?}"
    );
    let ignored = map_event(&Event::GroupUpdate(event(N::Suspended)), &cx);
    assert!(matches!(ignored, Step::Ignore));
}
