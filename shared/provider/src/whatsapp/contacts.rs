//! Checking phone numbers on WhatsApp: `contacts().is_on_whatsapp` (a usync query) and the
//! mapping of its results onto the port's [`ContactCheck`], in the order asked.
//!
//! The library keeps every LID ↔ phone number pair a check learns in the device's store
//! (its `lid_pn` table, the same one incoming messages and presences are resolved
//! through); a registered number whose answer omits its LID takes the one the store
//! already knew.

use wa_core::contacts::ContactCheck;
use whatsapp_rust::features::IsOnWhatsAppResult;
use whatsapp_rust::{Client, Jid};

use super::classify::classify_error;
use super::mapping;

/// Checks `phone_numbers` (digits) in one query; each distinct number is asked once.
pub(super) async fn check_contacts(
    client: &Client,
    phone_numbers: &[String],
) -> Result<Vec<ContactCheck>, wa_core::provider::ProviderFailure> {
    let mut jids: Vec<Jid> = Vec::with_capacity(phone_numbers.len());
    for n in phone_numbers {
        let jid = Jid::pn(n);
        if !jids.contains(&jid) {
            jids.push(jid);
        }
    }
    let results = client
        .contacts()
        .is_on_whatsapp(&jids)
        .await
        .map_err(|e| classify_error(&e, false))?;
    let mut checks = Vec::with_capacity(phone_numbers.len());
    for n in phone_numbers {
        let result = result_for(n, &results);
        let known_lid = match result {
            Some(r) if r.is_registered && answered_lid(r).is_none() => stored_lid(client, n).await,
            _ => None,
        };
        checks.push(contact_check(n, result, known_lid.as_deref()));
    }
    Ok(checks)
}

/// The LID user the device's store keeps for the phone number `digits` (best effort).
async fn stored_lid(client: &Client, digits: &str) -> Option<String> {
    match client.get_lid_pn_entry(&Jid::pn(digits)).await {
        Ok(entry) => entry.map(|e| e.lid.to_string()),
        Err(e) => {
            tracing::debug!(error = %e, "phone number to LID lookup failed");
            None
        }
    }
}

/// The phone-number JID and the LID of a result: a LID-primary answer names the number in
/// `pn_jid`.
fn identities(r: &IsOnWhatsAppResult) -> (Option<&Jid>, Option<&Jid>) {
    if r.jid.is_lid() {
        (r.pn_jid.as_ref().filter(|j| j.is_pn()), Some(&r.jid))
    } else {
        (Some(&r.jid), r.lid.as_ref().filter(|j| j.is_lid()))
    }
}

fn answered_lid(r: &IsOnWhatsAppResult) -> Option<&Jid> {
    identities(r).1
}

/// The result answering the phone number `digits`, if WhatsApp answered it.
pub(super) fn result_for<'a>(
    digits: &str,
    results: &'a [IsOnWhatsAppResult],
) -> Option<&'a IsOnWhatsAppResult> {
    results.iter().find(|r| {
        identities(r)
            .0
            .is_some_and(|pn| mapping::digits(&pn.user) == digits)
    })
}

/// What to answer for the phone number `digits` given WhatsApp's `result` (`None`: not in
/// the answer) and the LID user the store knew for it: not registered (or not answered)
/// is `on_whatsapp: false` without JID nor LID; registered has its phone-number JID and
/// the LID from the answer, else the stored one, else none.
pub(super) fn contact_check(
    digits: &str,
    result: Option<&IsOnWhatsAppResult>,
    known_lid: Option<&str>,
) -> ContactCheck {
    let Some(r) = result.filter(|r| r.is_registered) else {
        return ContactCheck::absent(digits);
    };
    let (pn, lid) = identities(r);
    let jid = pn.map(Jid::to_non_ad).unwrap_or_else(|| Jid::pn(digits));
    let lid = lid
        .map(|l| l.to_non_ad().to_string())
        .or_else(|| known_lid.map(|l| Jid::lid(l).to_string()));
    ContactCheck {
        phone_number: digits.to_owned(),
        on_whatsapp: true,
        jid: Some(jid.to_string()),
        lid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::NodeBuilder;
    use whatsapp_rust::wacore::iq::spec::IqSpec;
    use whatsapp_rust::wacore::iq::usync::{
        IsOnWhatsAppQueryType, IsOnWhatsAppSpec, IsOnWhatsAppUser,
    };
    use whatsapp_rust::wacore_binary::Node;

    /// The library's own results of a usync answer listing `users`.
    fn results(query: IsOnWhatsAppQueryType, users: Vec<Node>) -> Vec<IsOnWhatsAppResult> {
        let spec = IsOnWhatsAppSpec::new(
            vec![IsOnWhatsAppUser {
                jid: Jid::pn("15551230002"),
                known_lid: None,
            }],
            "sid",
            query,
        );
        let response = NodeBuilder::new("iq")
            .attr("type", "result")
            .children([NodeBuilder::new("usync")
                .children([NodeBuilder::new("list").children(users).build()])
                .build()])
            .build();
        spec.parse_response(&response.as_node_ref()).unwrap()
    }

    /// A phone-number user: its contact type (`in`: registered) and LID, if any.
    fn pn_user(digits: &str, contact: &str, lid: Option<&str>) -> Node {
        let mut children = vec![NodeBuilder::new("contact").attr("type", contact).build()];
        if let Some(lid) = lid {
            children.push(NodeBuilder::new("lid").attr("val", lid).build());
        }
        NodeBuilder::new("user")
            .attr("jid", format!("{digits}@s.whatsapp.net"))
            .children(children)
            .build()
    }

    fn check(digits: &str, jid: Option<&str>, lid: Option<&str>) -> ContactCheck {
        ContactCheck {
            phone_number: digits.into(),
            on_whatsapp: jid.is_some(),
            jid: jid.map(str::to_owned),
            lid: lid.map(str::to_owned),
        }
    }

    #[test]
    fn each_number_maps_from_its_result() {
        let got = results(
            IsOnWhatsAppQueryType::Pn,
            vec![
                pn_user("15551230002", "in", Some("100000000000001@lid")),
                pn_user("15551230003", "in", None),
                pn_user("15550001234", "out", None),
            ],
        );
        for (digits, known, wanted) in [
            // Found, with its LID in the answer (a stored one does not override it).
            (
                "15551230002",
                Some("999"),
                check(
                    "15551230002",
                    Some("15551230002@s.whatsapp.net"),
                    Some("100000000000001@lid"),
                ),
            ),
            // Found without a LID: the one the store knew, else none.
            (
                "15551230003",
                Some("100000000000007"),
                check(
                    "15551230003",
                    Some("15551230003@s.whatsapp.net"),
                    Some("100000000000007@lid"),
                ),
            ),
            (
                "15551230003",
                None,
                check("15551230003", Some("15551230003@s.whatsapp.net"), None),
            ),
            // Not registered: no JID, no LID, whatever the store holds.
            ("15550001234", Some("5"), check("15550001234", None, None)),
            // Not in the answer at all.
            ("15559999999", None, check("15559999999", None, None)),
        ] {
            assert_eq!(
                contact_check(digits, result_for(digits, &got), known),
                wanted,
                "{digits}"
            );
        }
    }

    #[test]
    fn a_lid_primary_answer_names_the_number_in_pn_jid() {
        let user = NodeBuilder::new("user")
            .attr("jid", "100000000000009@lid")
            .attr("pn_jid", "15551230004@s.whatsapp.net")
            .build();
        let got = results(IsOnWhatsAppQueryType::Lid, vec![user]);
        assert_eq!(
            contact_check("15551230004", result_for("15551230004", &got), None),
            check(
                "15551230004",
                Some("15551230004@s.whatsapp.net"),
                Some("100000000000009@lid")
            )
        );
        assert!(
            result_for("100000000000009", &got).is_none(),
            "not a number"
        );
    }
}
