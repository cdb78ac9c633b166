//! Emoji, as a reaction takes them.

/// Whether `s` is one emoji: a pictograph with its variation selector, skin tone or tag
/// characters, a sequence of them joined by zero-width joiners (👨‍👩‍👧), a flag (two
/// regional indicators) or a keycap (1️⃣).
pub fn is_one_emoji(s: &str) -> bool {
    const ZWJ: char = '\u{200D}';
    const VS16: char = '\u{FE0F}';
    const KEYCAP: char = '\u{20E3}';
    let pictograph = |c: char| {
        matches!(c as u32,
            0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA
            | 0x231A..=0x23FF | 0x24C2 | 0x25AA..=0x27BF | 0x2934 | 0x2935
            | 0x2B05..=0x2B55 | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF)
            && !regional(c)
            && !skin_tone(c)
    };
    fn regional(c: char) -> bool {
        ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
    }
    fn skin_tone(c: char) -> bool {
        ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
    }
    let modifier = |c: char| {
        c == VS16 || c == '\u{FE0E}' || skin_tone(c) || ('\u{E0020}'..='\u{E007F}').contains(&c)
    };
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() || chars.len() > 16 {
        return false;
    }
    let (mut units, mut joined, mut i) = (0, false, 0);
    while i < chars.len() {
        let c = chars[i];
        let step = if matches!(c, '0'..='9' | '#' | '*') {
            let j = if chars.get(i + 1) == Some(&VS16) {
                i + 2
            } else {
                i + 1
            };
            if chars.get(j) != Some(&KEYCAP) {
                return false;
            }
            j + 1 - i
        } else if regional(c) {
            if !chars.get(i + 1).is_some_and(|&n| regional(n)) {
                return false;
            }
            2
        } else if pictograph(c) {
            1
        } else if c == ZWJ {
            if i == 0 || joined {
                return false;
            }
            joined = true;
            i += 1;
            continue;
        } else if modifier(c) {
            if i == 0 || joined {
                return false;
            }
            i += 1;
            continue;
        } else {
            return false;
        };
        if !joined {
            units += 1;
        }
        joined = false;
        i += step;
    }
    !joined && units == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_rows() {
        for ok in [
            "👍",
            "❤️",
            "❤",
            "😂",
            "🙏🏽",
            "👨‍👩‍👧‍👦",
            "👩🏻‍❤️‍💋‍👨🏼",
            "🇫🇷",
            "1️⃣",
            "#⃣",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "©️",
            "☕",
        ] {
            assert!(is_one_emoji(ok), "{ok:?} is one emoji");
        }
        for bad in [
            "",
            "a",
            "ok",
            "1",
            "👍👍",
            "👍 ",
            " 👍",
            "🇫",
            "🇫🇷🇩🇪",
            "\u{200D}👍",
            "👍\u{200D}",
            "🏽",
            "\u{FE0F}",
            "é",
            "中",
            "👍a",
            "1\u{FE0F}",
        ] {
            assert!(!is_one_emoji(bad), "{bad:?} is not one emoji");
        }
        assert!(!is_one_emoji(&"👍\u{FE0F}".repeat(9)));
    }
}
