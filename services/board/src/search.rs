//! Search terms of board text, the same on PostgreSQL and SQLite: an n-gram inverted index
//! (`post_terms`) finds candidates through a B-tree, then a substring match on the normalized
//! text confirms them. See `docs/decisions/0014-board.md` for why not `pg_trgm` / FTS5.
//!
//! Text is normalized (NFKC, lowercase, a few foldings) and cut into runs of letters and digits
//! of one kind:
//! - **dense scripts** (Hangul, CJK ideographs, kana), where a word is often one or two
//!   syllables ("비", "우산"): every character and every pair of adjacent characters;
//! - **everything else** (Latin, Cyrillic, digits, …): every three adjacent characters, and the
//!   first two characters of each run ("pm" of "pm10"); a single letter is not a term.
//!
//! A query is normalized the same way and split at white space into words. A post matches when
//! it holds every looked-up term (the index) and every word as a substring (the check). Every
//! looked-up term of a query word is a term of any text holding that word, so the index never
//! hides a match: a two-character Latin piece is looked up only when it is the whole query (and
//! then finds the words it starts); beside longer terms the substring check confirms it.

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;

/// Most words a query may hold.
pub const MAX_QUERY_WORDS: usize = 5;
/// Most characters a query may hold.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most terms a query looks up (the most selective: longest first); the substring check
/// confirms the rest.
const MAX_QUERY_TERMS: usize = 8;

/// Hangul compatibility jamo (ㅋ, ㅠ, …): NFKC would turn them into conjoining jamo that then
/// compose with their neighbours ("ㅋㅋㅋㅠㅠ" into "ᄏᄏ큐ᅲ"), so a search for "ㅠㅠ" would miss
/// it. They are kept as typed.
fn compatibility_jamo(c: char) -> bool {
    ('\u{3131}'..='\u{318E}').contains(&c)
}

/// Lowercased NFKC (full-width letters and case variants compare equal), with compatibility
/// jamo kept as typed, final sigma, dotted capital I and ß folded, and typographic quotes
/// made plain (a phone's "don’t" finds "don't").
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest.find(compatibility_jamo).unwrap_or(rest.len());
        let (plain, tail) = rest.split_at(cut);
        out.extend(plain.nfkc().flat_map(char::to_lowercase));
        let jamo = tail.find(|c| !compatibility_jamo(c)).unwrap_or(tail.len());
        out.push_str(&tail[..jamo]);
        rest = &tail[jamo..];
    }
    fold(&out)
}

fn fold(lowered: &str) -> String {
    let mut out = String::with_capacity(lowered.len());
    let mut previous = ' ';
    for c in lowered.chars() {
        match c {
            'ς' => out.push('σ'),
            'ß' => out.push_str("ss"),
            // "İ" lowercases to "i" and a combining dot: the dot goes.
            '\u{307}' if previous == 'i' => {}
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{2033}' => out.push('"'),
            _ => out.push(c),
        }
        previous = c;
    }
    out
}

/// Scripts written without spaces inside short words, indexed by one and two characters.
fn dense(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul jamo
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3130..=0x318F    // Hangul compatibility jamo
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xA960..=0xA97F    // Hangul jamo extended A
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xD7B0..=0xD7FF    // Hangul jamo extended B
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3FFFF) // CJK extensions B on
}

/// Runs of letters and digits of one kind (dense or not) in normalized text.
fn runs(normalized: &str) -> Vec<(bool, Vec<char>)> {
    let mut out: Vec<(bool, Vec<char>)> = Vec::new();
    for c in normalized.chars() {
        if !c.is_alphanumeric() {
            if out.last().is_some_and(|(_, r)| !r.is_empty()) {
                out.push((false, Vec::new()));
            }
            continue;
        }
        let kind = dense(c);
        match out.last_mut() {
            Some((k, run)) if run.is_empty() || *k == kind => {
                *k = kind;
                run.push(c);
            }
            _ => out.push((kind, vec![c])),
        }
    }
    out.retain(|(_, r)| !r.is_empty());
    out
}

fn run_terms(dense: bool, run: &[char], into: &mut BTreeSet<String>) {
    if dense {
        into.extend(run.iter().map(|c| c.to_string()));
        into.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
    } else if run.len() >= 2 {
        into.insert(run[..2].iter().collect());
        into.extend(run.windows(3).map(|w| w.iter().collect::<String>()));
    }
}

/// The terms a query word looks up (`long`), which a text holding the word must hold, and its
/// two-letter Latin pieces (`short`), which it holds only at the start of a run.
fn query_terms(word: &str, long: &mut BTreeSet<String>, short: &mut BTreeSet<String>) {
    for (dense, run) in runs(word) {
        if dense {
            // A dense run's pairs; its single character only when it has no pair.
            if run.len() == 1 {
                long.insert(run[0].to_string());
            } else {
                long.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
            }
        } else if run.len() == 2 {
            // Two letters may sit inside a longer run of the text ("pm" in "pm10", "ai" in
            // "openai"), where only a run's first two are indexed.
            short.insert(run.iter().collect());
        } else {
            long.extend(run.windows(3).map(|w| w.iter().collect::<String>()));
        }
    }
}

/// Every term of a text (title and body), for the index.
pub fn terms(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (dense, run) in runs(&normalize(text)) {
        run_terms(dense, &run, &mut out);
    }
    out
}

/// The text a query's words are matched against as substrings.
pub fn searchable(title: &str, body: &str) -> String {
    normalize(&format!("{title}\n{body}"))
}

/// A checked query: the terms to look up and the words to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<String>,
    pub words: Vec<String>,
}

/// Why a query cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    TooLong,
    TooManyWords,
    /// A control character (NUL, line breaks, …): a search is one line of text.
    Control,
    /// Nothing that can be looked up (only single letters or punctuation): the index cannot
    /// narrow it, and a scan is what this design exists to avoid.
    TooShort,
}

/// Plans a query (`q` as typed).
pub fn query(q: &str) -> Result<Query, QueryError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong);
    }
    if q.chars().any(char::is_control) {
        return Err(QueryError::Control);
    }
    let normalized = normalize(q);
    let words: Vec<String> = normalized.split_whitespace().map(str::to_owned).collect();
    if words.len() > MAX_QUERY_WORDS {
        return Err(QueryError::TooManyWords);
    }
    let (mut long, mut short) = (BTreeSet::new(), BTreeSet::new());
    for word in &words {
        query_terms(word, &mut long, &mut short);
    }
    // Two-letter pieces are looked up only when nothing else is: then they find runs that
    // start with them; beside longer terms the substring check confirms them.
    let mut terms: Vec<String> = if long.is_empty() { short } else { long }.into_iter().collect();
    if terms.is_empty() {
        return Err(QueryError::TooShort);
    }
    // Longest terms first (rarer); the substring check confirms whatever is left out.
    terms.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    terms.truncate(MAX_QUERY_TERMS);
    Ok(Query { terms, words })
}

/// A `LIKE` pattern matching `word` anywhere, with `\` as the escape character.
pub fn like_pattern(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn korean_is_indexed_by_syllables_and_pairs() {
        assert_eq!(terms("우산 챙기기"), set(&["우", "산", "우산", "챙", "기", "챙기", "기기"]));
    }

    #[test]
    fn latin_is_indexed_by_trigrams_and_each_runs_first_two_letters() {
        assert_eq!(terms("Rain, AI!"), set(&["ra", "rai", "ain", "ai"]));
        assert_eq!(terms("PM10"), set(&["pm", "pm1", "m10"]));
        assert_eq!(terms("a"), BTreeSet::new());
    }

    #[test]
    fn mixed_runs_split_by_script() {
        assert_eq!(terms("우산2개"), set(&["우", "산", "우산", "개"]));
        assert_eq!(terms("비rain"), set(&["비", "ra", "rai", "ain"]));
    }

    #[test]
    fn normalization_folds_width_case_and_compatibility_forms() {
        assert_eq!(normalize("ＲＡＩＮ"), "rain");
        assert_eq!(terms("ＲＡＩＮ"), terms("rain"));
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("İstanbul ΟΔΟΣ"), "istanbul οδοσ");
        assert_eq!(normalize("don’t “go”"), "don't \"go\"");
    }

    #[test]
    fn compatibility_jamo_stay_as_typed() {
        // NFKC alone would compose "ㅋㅋㅋㅠㅠ" into "ᄏᄏ큐ᅲ", and "ㅠㅠ" would not find it.
        assert_eq!(normalize("ㅋㅋㅋㅠㅠ 좋아요"), "ㅋㅋㅋㅠㅠ 좋아요");
        let text = terms("오늘 비 ㅋㅋㅋㅠㅠ");
        for q in ["ㅠㅠ", "ㅋㅋㅋ", "ㅋㅠ"] {
            assert!(query(q).unwrap().terms.iter().all(|t| text.contains(t)), "{q}");
            assert!(normalize("오늘 비 ㅋㅋㅋㅠㅠ").contains(&normalize(q)), "{q}");
        }
    }

    #[test]
    fn two_letters_are_looked_up_only_alone() {
        // Beside a longer word, two letters are confirmed as a substring, not looked up:
        // "iphone 15" finds "iPhone15", "pm 미세먼지" finds "PM10 미세먼지".
        assert_eq!(query("iphone 15").unwrap().terms.iter().filter(|t| t.chars().count() < 3).count(), 0);
        let q = query("미세먼지 pm").unwrap();
        assert!(!q.terms.contains(&"pm".to_owned()));
        assert_eq!(q.words, vec!["미세먼지".to_owned(), "pm".to_owned()]);
        // Alone they find the runs they start.
        assert_eq!(query("PM").unwrap().terms, vec!["pm".to_owned()]);
        assert!(terms("오늘 PM10 나쁨").contains("pm"));
        // Inside a word next to a dense script: the dense part is looked up.
        assert_eq!(query("ai로봇").unwrap().terms, vec!["로봇".to_owned()]);
    }

    #[test]
    fn a_query_looks_up_pairs_and_confirms_its_words() {
        let q = query("우산 Umbrella").unwrap();
        assert_eq!(q.words, vec!["우산".to_owned(), "umbrella".to_owned()]);
        assert!(q.terms.contains(&"우산".to_owned()));
        assert!(!q.terms.contains(&"우".to_owned()), "single syllables add nothing beside their pair");
        assert!(q.terms.len() <= MAX_QUERY_TERMS);
        // One syllable is a term of its own: "비" (rain) is a real search.
        assert_eq!(query("비").unwrap().terms, vec!["비".to_owned()]);
        assert_eq!(query("AI").unwrap().terms, vec!["ai".to_owned()]);
    }

    #[test]
    fn queries_without_anything_to_look_up_are_refused() {
        assert_eq!(query("a"), Err(QueryError::TooShort));
        assert_eq!(query("  ?! "), Err(QueryError::TooShort));
        let q = query("rain a").unwrap();
        assert_eq!((q.terms.len(), q.words.len()), (2, 2), "a single letter is confirmed, not looked up");
        assert_eq!(query(&"x".repeat(MAX_QUERY_CHARS + 1)), Err(QueryError::TooLong));
        assert_eq!(query("a1 b2 c3 d4 e5 f6"), Err(QueryError::TooManyWords));
        assert_eq!(query("rain\u{0}"), Err(QueryError::Control));
        assert_eq!(query("rain\nsnow"), Err(QueryError::Control));
    }

    #[test]
    fn every_query_term_is_a_term_of_any_text_holding_its_words() {
        // The index narrows correctly only if a text containing a piece of a word holds the
        // piece's terms: checked for every piece of every word of a mixed text. (A two-letter
        // piece cut from a longer Latin word is the documented exception: two letters find
        // two-letter words.)
        let text = "오늘은 비가 와요. Bring an umbrella ☂ 우산2개, AI-made 미션!";
        let indexed = terms(text);
        for word in normalize(text).split_whitespace() {
            let chars: Vec<char> = word.chars().collect();
            for start in 0..chars.len() {
                for end in start + 1..=chars.len() {
                    let piece: String = chars[start..end].iter().collect();
                    let Ok(q) = query(&piece) else { continue };
                    for t in q.terms.iter().filter(|t| t.chars().count() != 2 || t.chars().any(dense)) {
                        assert!(indexed.contains(t), "{piece:?} looks up {t:?}, which {text:?} lacks");
                    }
                }
            }
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
