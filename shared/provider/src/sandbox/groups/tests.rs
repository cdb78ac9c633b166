use super::*;

const ME: &str = "15551230001@s.whatsapp.net";
const TEAM: &str = "120363000000000001@g.us";
const ANNOUNCE: &str = "120363000000000403@g.us";
const PEER: &str = "15551230002@s.whatsapp.net";
const ABSENT: &str = "15550001234@s.whatsapp.net";

fn run(groups: &mut Vec<SandboxGroup>, r: GroupRequest) -> Result<Outcome, ProviderFailure> {
    carry_out(ME, groups, &r, None)
}

fn info(groups: &[SandboxGroup], jid: &str) -> GroupInfo {
    groups.iter().find(|g| g.group.jid == jid).unwrap().info()
}

fn participants(r: GroupRequest, action: ParticipantAction, who: &[&str]) -> GroupRequest {
    let GroupRequest::Info { group_jid } = r else {
        unreachable!()
    };
    GroupRequest::Participants {
        group_jid,
        action,
        participants: who.iter().map(|s| s.to_string()).collect(),
    }
}

fn team() -> GroupRequest {
    GroupRequest::Info {
        group_jid: TEAM.into(),
    }
}

#[test]
fn a_device_starts_in_the_three_groups_admin_of_the_first_only() {
    let groups = seed(ME);
    assert_eq!(groups.len(), 3);
    let team = groups[0].info();
    assert_eq!(team.group.participant_count, 3);
    assert_eq!(team.participants.len(), 3);
    assert!(team.participants[0].is_super_admin && team.participants[0].jid == ME);
    let announce = groups[1].info();
    assert_eq!(announce.participants.len(), 250);
    assert!(!announce.participants[0].is_admin);
    assert!(announce.participants[1].is_super_admin);
    assert_eq!(groups[2].info().participants.len(), 1024);
    assert!(groups.iter().map(|g| &g.invite_code).all(|c| !c.is_empty()));
}

#[test]
fn info_of_a_group_the_device_is_not_in_is_not_found() {
    let mut groups = seed(ME);
    let e = run(
        &mut groups,
        GroupRequest::Info {
            group_jid: "120363999999999999@g.us".into(),
        },
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let out = run(&mut groups, team()).unwrap();
    assert!(!out.changed && out.updates.is_empty() && out.record.is_none());
    assert_eq!(out.answer.unwrap().into_group().unwrap().group.jid, TEAM);
}

#[test]
fn a_created_group_has_the_device_as_creator_and_the_reachable_participants() {
    let mut groups = seed(ME);
    let out = run(
        &mut groups,
        GroupRequest::Create {
            subject: "Lunch".into(),
            participants: vec![PEER.into(), ABSENT.into()],
        },
    )
    .unwrap();
    let g = out.answer.unwrap().into_group().unwrap();
    assert!(g.group.jid.starts_with("120363") && g.group.jid.ends_with("@g.us"));
    assert_eq!(
        (g.group.subject.as_str(), g.group.participant_count),
        ("Lunch", 2)
    );
    assert!(g.participants[0].is_super_admin && g.participants[0].jid == ME);
    assert_eq!(g.participants[1].jid, PEER);
    assert_eq!(groups.len(), 4);
    assert!(out.changed);
    assert_eq!(out.keep_invite.unwrap().group.jid, g.group.jid);
    let u = &out.updates[0];
    assert_eq!(u.action, GroupUpdateAction::Created);
    assert_eq!(u.participants, [ME, PEER]);
    assert_eq!(u.by.as_deref(), Some(ME));
    assert_eq!(u.changes.subject.as_deref(), Some("Lunch"));
    let r = out.record.unwrap();
    assert_eq!(
        (r.kind.as_str(), r.to.as_str()),
        ("group_create", g.group.jid.as_str())
    );
    assert_eq!(r.participants, [PEER, ABSENT]);
}

#[test]
fn changes_need_an_admin_and_are_reported_one_event_per_kind() {
    let mut groups = seed(ME);
    let changes = GroupChanges {
        subject: Some("Renamed".into()),
        is_announce: Some(true),
        ..GroupChanges::default()
    };
    let e = run(
        &mut groups,
        GroupRequest::Update {
            group_jid: ANNOUNCE.into(),
            changes: changes.clone(),
        },
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    let out = run(
        &mut groups,
        GroupRequest::Update {
            group_jid: TEAM.into(),
            changes: changes.clone(),
        },
    )
    .unwrap();
    let g = out.answer.unwrap().into_group().unwrap();
    assert_eq!(g.group.subject, "Renamed");
    assert!(g.group.is_announce);
    let actions: Vec<_> = out.updates.iter().map(|u| u.action).collect();
    assert_eq!(
        actions,
        [GroupUpdateAction::Subject, GroupUpdateAction::Settings]
    );
    let r = out.record.unwrap();
    assert_eq!((r.kind.as_str(), r.changes), ("group_update", changes));
    assert_eq!(info(&groups, TEAM).group.subject, "Renamed");
}

#[test]
fn each_participant_gets_its_own_result() {
    use ParticipantAction as A;
    let mut groups = seed(ME);
    let member = "15551240000@s.whatsapp.net";
    let add = run(
        &mut groups,
        participants(team(), A::Add, &[PEER, member, ABSENT]),
    )
    .unwrap();
    let results = add.answer.unwrap().into_results().unwrap();
    let codes: Vec<_> = results
        .iter()
        .map(|r| r.error.as_ref().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        [None, Some(ErrorCode::Conflict), Some(ErrorCode::NotFound)]
    );
    assert_eq!(add.updates.len(), 1);
    assert_eq!(add.updates[0].action, GroupUpdateAction::ParticipantsAdded);
    assert_eq!(add.updates[0].participants, [PEER]);
    assert_eq!(info(&groups, TEAM).participants.len(), 4);

    let promote = run(
        &mut groups,
        participants(team(), A::Promote, &[PEER, ABSENT]),
    )
    .unwrap();
    let results = promote.answer.unwrap().into_results().unwrap();
    assert!(results[0].ok && !results[1].ok);
    assert!(info(&groups, TEAM).participants[3].is_admin);
    assert_eq!(promote.updates[0].action, GroupUpdateAction::Promoted);

    let demote = run(&mut groups, participants(team(), A::Demote, &[PEER, ME])).unwrap();
    let results = demote.answer.unwrap().into_results().unwrap();
    assert!(results[0].ok);
    assert_eq!(
        results[1].error.as_ref().unwrap().code,
        ErrorCode::Forbidden
    );
    assert!(!info(&groups, TEAM).participants[3].is_admin);

    let remove = run(&mut groups, participants(team(), A::Remove, &[ME, PEER])).unwrap();
    let results = remove.answer.unwrap().into_results().unwrap();
    assert_eq!(
        results[0].error.as_ref().unwrap().code,
        ErrorCode::Forbidden
    );
    assert!(results[1].ok);
    assert_eq!(info(&groups, TEAM).participants.len(), 3);
    let r = remove.record.unwrap();
    assert_eq!(
        (r.kind.as_str(), r.action, r.participants.len()),
        ("group_participants", Some(A::Remove), 2)
    );

    let none = run(&mut groups, participants(team(), A::Remove, &[PEER])).unwrap();
    assert!(none.updates.is_empty(), "nothing done, nothing reported");

    let announce = GroupRequest::Info {
        group_jid: ANNOUNCE.into(),
    };
    let e = run(&mut groups, participants(announce, A::Add, &[PEER])).unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
}

#[test]
fn a_revoked_invite_is_replaced_and_forgotten() {
    let mut groups = seed(ME);
    let first = run(
        &mut groups,
        GroupRequest::Invite {
            group_jid: TEAM.into(),
        },
    )
    .unwrap();
    let code = first.answer.unwrap().into_invite().unwrap().invite_code;
    assert!(!first.changed && first.record.is_none());
    assert_eq!(first.keep_invite.unwrap().invite_code, code);
    let revoked = run(
        &mut groups,
        GroupRequest::RevokeInvite {
            group_jid: TEAM.into(),
        },
    )
    .unwrap();
    let new = revoked.answer.unwrap().into_invite().unwrap();
    assert_ne!(new.invite_code, code);
    assert_eq!(
        new.invite_link,
        format!("https://chat.whatsapp.com/{}", new.invite_code)
    );
    assert_eq!(revoked.forget_invite.as_deref(), Some(code.as_str()));
    assert_eq!(revoked.record.unwrap().invite_code, Some(new.invite_code));
    for r in [
        GroupRequest::Invite {
            group_jid: ANNOUNCE.into(),
        },
        GroupRequest::RevokeInvite {
            group_jid: ANNOUNCE.into(),
        },
    ] {
        assert_eq!(run(&mut groups, r).unwrap_err().code, ErrorCode::Forbidden);
    }
}

#[test]
fn joining_adds_the_device_to_its_copy_of_the_group() {
    let other = "15551230009@s.whatsapp.net";
    let mut theirs = seed(other);
    let created = carry_out(
        other,
        &mut theirs,
        &GroupRequest::Create {
            subject: "Club".into(),
            participants: vec![],
        },
        None,
    )
    .unwrap();
    let snapshot = created.keep_invite.unwrap();
    let join = GroupRequest::Join {
        invite_code: snapshot.invite_code.clone(),
    };
    let mut mine = seed(ME);
    assert_eq!(
        carry_out(ME, &mut mine, &join, None).unwrap_err().code,
        ErrorCode::NotFound
    );
    let out = carry_out(ME, &mut mine, &join, Some(snapshot.clone())).unwrap();
    let g = out.answer.unwrap().into_group().unwrap();
    assert_eq!(g.participants.len(), 2);
    assert!(g.participants[0].is_super_admin && g.participants[0].jid == other);
    assert!(!g.participants[1].is_admin && g.participants[1].jid == ME);
    assert_eq!(out.updates[0].action, GroupUpdateAction::ParticipantsAdded);
    assert_eq!(out.record.unwrap().kind, "group_join");
    // A second join answers the group as it is.
    let again = carry_out(ME, &mut mine, &join, Some(snapshot)).unwrap();
    assert!(!again.changed && again.updates.is_empty());
    assert_eq!(mine.len(), 4);
}

#[test]
fn leaving_drops_the_group() {
    let mut groups = seed(ME);
    let out = run(
        &mut groups,
        GroupRequest::Leave {
            group_jid: ANNOUNCE.into(),
        },
    )
    .unwrap();
    assert_eq!(out.answer, Some(GroupAnswer::Done));
    assert_eq!(out.updates[0].action, GroupUpdateAction::Left);
    assert_eq!(out.updates[0].participants, [ME]);
    assert_eq!(out.record.unwrap().kind, "group_leave");
    assert_eq!(groups.len(), 2);
    let again = GroupRequest::Leave {
        group_jid: ANNOUNCE.into(),
    };
    assert_eq!(
        run(&mut groups, again).unwrap_err().code,
        ErrorCode::NotFound
    );
}

fn reported(action: GroupUpdateAction, who: &[&str]) -> GroupUpdate {
    GroupUpdate {
        group_jid: TEAM.into(),
        action,
        participants: who.iter().map(|s| s.to_string()).collect(),
        by: Some(PEER.into()),
        changes: GroupChanges::default(),
    }
}

#[test]
fn changes_made_elsewhere_are_kept() {
    use GroupUpdateAction as A;
    let mut groups = seed(ME);
    apply_reported(ME, &mut groups, &reported(A::ParticipantsAdded, &[PEER])).unwrap();
    assert_eq!(info(&groups, TEAM).participants.len(), 4);
    apply_reported(ME, &mut groups, &reported(A::Promoted, &[PEER])).unwrap();
    assert!(info(&groups, TEAM).participants[3].is_admin);
    apply_reported(ME, &mut groups, &reported(A::Demoted, &[PEER, ME])).unwrap();
    let after = info(&groups, TEAM);
    assert!(!after.participants[3].is_admin);
    assert!(after.participants[0].is_admin, "the super admin stays one");
    let subject = GroupUpdate {
        changes: GroupChanges {
            subject: Some("Theirs".into()),
            ..GroupChanges::default()
        },
        ..reported(A::Subject, &[])
    };
    apply_reported(ME, &mut groups, &subject).unwrap();
    assert_eq!(info(&groups, TEAM).group.subject, "Theirs");
    apply_reported(ME, &mut groups, &reported(A::ParticipantsRemoved, &[PEER])).unwrap();
    assert_eq!(info(&groups, TEAM).participants.len(), 3);
    apply_reported(ME, &mut groups, &reported(A::ParticipantsRemoved, &[ME])).unwrap();
    assert_eq!(
        groups.len(),
        2,
        "removed: the device is no longer in the group"
    );
    let e = apply_reported(ME, &mut groups, &reported(A::Subject, &[])).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[test]
fn a_group_created_elsewhere_with_the_device_is_added() {
    let mut groups = seed(ME);
    let created = GroupUpdate {
        group_jid: "120363000000000777@g.us".into(),
        changes: GroupChanges {
            subject: Some("Party".into()),
            ..GroupChanges::default()
        },
        ..reported(GroupUpdateAction::Created, &[ME])
    };
    apply_reported(ME, &mut groups, &created).unwrap();
    let g = info(&groups, "120363000000000777@g.us");
    assert_eq!(g.group.subject, "Party");
    assert_eq!(g.participants.len(), 2);
    assert!(g.participants[0].is_super_admin && g.participants[0].jid == PEER);
    let e = apply_reported(ME, &mut groups, &created).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
}

#[test]
fn a_devices_groups_are_kept_on_disk_and_wiped_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = GroupFiles::new(dir.path()).unwrap();
    let d = Uuid::new_v4();
    let n = files.with(d, ME, |gs| Ok((gs.len(), false))).unwrap();
    assert_eq!(n, 3);
    files
        .with(d, ME, |gs| {
            gs.remove(0);
            Ok(((), true))
        })
        .unwrap();
    assert_eq!(files.with(d, ME, |gs| Ok((gs.len(), false))).unwrap(), 2);
    let g = seed(ME).remove(0);
    files.keep_invite(Some(&g), None).unwrap();
    assert_eq!(files.invited(&g.invite_code).unwrap().group.jid, TEAM);
    files.keep_invite(None, Some(&g.invite_code)).unwrap();
    assert!(files.invited(&g.invite_code).is_none());
    files.wipe(d);
    assert_eq!(files.with(d, ME, |gs| Ok((gs.len(), false))).unwrap(), 3);
}
