//! Masking of secrets in connection strings and in any text that may quote
//! one (errors, logs, `Debug`): the one place that decides what a secret
//! looks like. Pure functions over text, no I/O.
//!
//! Every form sqlx or libpq accepts is covered, and a few that neither does
//! but that people write anyway:
//! - the password of a URL's user information, `postgres://u:SECRET@h/db`,
//!   also when it is malformed: an unencoded `@`, `/`, `?` or `#` in it
//!   (`postgres://u:p@ss@h/db`), an unparsable port, several URLs in one text;
//! - URL query parameters, `?password=SECRET`, `&sslpassword=SECRET`, in any
//!   case (`PASSWORD=`), with a percent-encoded name (`pass%77ord=`) or
//!   value, and any parameter whose name looks secret (see [`is_secret_name`]);
//! - libpq `key=value` strings, `host=h password=SECRET dbname=d`, with
//!   spaces around `=` and quoted values (`password='a b\'c'`);
//! - `Debug` and JSON renderings: `password: Some("SECRET")`, `"token": "SECRET"`.
//!
//! A name counts as secret when it contains `pass`, `pwd`, `secret`,
//! `token`, `auth`, `credential` or `key` (except the bare word `key`). That
//! also masks the *paths* in `sslkey=` and `passfile=`: deliberate, since
//! hiding a path costs little and deciding which "key" values are paths
//! would be a guess. When the text is ambiguous (an `@` that may end the
//! user information or sit in a query value), more is masked, never less.

use url::Url;

/// What every secret is replaced with.
pub const MASK: &str = "***";

/// Fragments of a parameter name that mark its value as secret (matched on
/// the lowercased, percent-decoded name).
const SECRET_NAME_PARTS: [&str; 7] = ["pass", "pwd", "secret", "token", "auth", "credential", "key"];

/// Whether a parameter named `name` carries a secret: `password`,
/// `sslpassword`, `PASSWORD`, `pass%77ord`, `api_token`, `sslkey`, ... but
/// not the bare word `key` (SQL and log fields use it for plain keys).
pub fn is_secret_name(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase();
    name != "key" && SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// Masks every secret in free text that may quote connection strings
/// anywhere (driver errors, log lines, `Debug` output). A URL is taken to
/// end at whitespace; a query value at `&`, whitespace or `"`; a libpq
/// value at whitespace unless quoted.
pub fn redact_text(text: &str) -> String {
    redact(text, Scope::Embedded)
}

/// Masks every secret in a whole connection string as the user gave it
/// (`DATABASE_URL`): a URL, well-formed or not, or a libpq `key=value`
/// string. Unlike [`redact_text`], a URL runs to the end of the text and a
/// query value to the next `&`, so a password with spaces is masked whole.
pub fn redact_connection_string(text: &str) -> String {
    redact(text, Scope::Whole)
}

/// A parsed URL safe to print: the password is `***`, every secret-looking
/// query parameter's value is `***` and the fragment (meaningless to
/// PostgreSQL, and where an unencoded `#` in a password ends up) is dropped.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    }
    url.set_fragment(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_name(&name) { MASK.to_string() } else { value.into_owned() };
                (name.into_owned(), value)
            })
            .collect();
        url.set_query(None);
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
    }
    // Belt and braces: the same text rules as for a URL the user wrote.
    redact_connection_string(url.as_str())
}

/// How far a connection string found in the text may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Inside other text: a URL ends at whitespace.
    Embedded,
    /// The whole text is one connection string.
    Whole,
}

/// Finds every secret in the original text with each rule, then masks the
/// union of what they found: neither rule can hide a secret from the other
/// (as masking one first could, when a password contains `password=`).
fn redact(text: &str, scope: Scope) -> String {
    let mut ranges = userinfo_passwords(text, scope);
    ranges.extend(parameter_values(text, scope));
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut ranges = ranges.into_iter().peekable();
    while let Some((start, mut end)) = ranges.next() {
        while let Some(&(next_start, next_end)) = ranges.peek() {
            if next_start > end {
                break;
            }
            end = end.max(next_end);
            ranges.next();
        }
        if start >= copied {
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The byte ranges of the password of every `scheme://user:password@` in the text.
fn userinfo_passwords(text: &str, scope: Scope) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut offset = 0;
    while let Some(separator) = text[offset..].find("://") {
        let token_start = offset + separator + 3;
        let tail = &text[token_start..];
        let end = match scope {
            Scope::Whole => tail.len(),
            Scope::Embedded => {
                let word = tail.find(char::is_whitespace).unwrap_or(tail.len());
                next_url_start(&tail[..word]).unwrap_or(word)
            }
        };
        if let Some((start, stop)) = password_span(&tail[..end]) {
            found.push((token_start + start, token_start + stop));
        }
        offset = token_start + end;
    }
    found
}

/// Where another URL starts in the same word (`a,postgres://...`): a
/// scheme right after punctuation. A `://` inside a password is not one.
fn next_url_start(word: &str) -> Option<usize> {
    word.match_indices("://").find_map(|(separator, _)| {
        let scheme_start = word[..separator]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map(|before| before + 1)?;
        let punctuation = word[..scheme_start].ends_with([',', ';', '|', '(', ')', '<', '>', '[', ']', '"', '\'']);
        (scheme_start < separator && punctuation).then_some(scheme_start)
    })
}

/// Where the password sits in what follows `scheme://`: from the first `:`
/// to the last `@`. An unencoded `@`, `/`, `?` or `#` in a password makes
/// `u:X@H/P?Q@R` read either as a password `X` and an `@` in a query value,
/// or as a password `X@H/P?Q`; the longer reading is masked, so an `@` in
/// a query value of a raw URL costs the host, never a password. (URLs that
/// strata prints itself, [`redact_url`], percent-encode a query's `@`.)
fn password_span(token: &str) -> Option<(usize, usize)> {
    let at = token.rfind('@')?;
    let colon = token[..at].find(':')?;
    Some((colon + 1, at))
}

/// Characters of a parameter name (`sslpassword`, `ssl-key`, `pass%77ord`, `options[x]`).
fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b'%' | b'[' | b']')
}

/// The byte ranges of the value of every `name=value` (and `name: "value"`) whose name looks secret.
fn parameter_values(text: &str, scope: Scope) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let starts_name = is_name_byte(bytes[position]) && (position == 0 || !is_name_byte(bytes[position - 1]));
        if !starts_name {
            position += 1;
            continue;
        }
        let name_end = position + bytes[position..].iter().take_while(|&&b| is_name_byte(b)).count();
        if let Some((value_start, value_end)) = secret_value(text, position, name_end, scope) {
            found.push((value_start, value_end));
            position = value_end.max(name_end);
        } else {
            position = name_end;
        }
    }
    found
}

/// The byte range of the value to mask when `text[name_start..name_end]`
/// is a secret parameter's name followed by `=` or `:` and a value.
fn secret_value(text: &str, name_start: usize, name_end: usize, scope: Scope) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    if !is_secret_name(&text[name_start..name_end]) {
        return None;
    }
    let before = name_start.checked_sub(1).map(|index| bytes[index]);
    let quoted_name = before == Some(b'"') && bytes.get(name_end) == Some(&b'"');
    let mut index = if quoted_name { name_end + 1 } else { name_end };
    let skip_blanks = |mut index: usize| {
        while matches!(bytes.get(index), Some(b' ' | b'\t')) {
            index += 1;
        }
        index
    };
    index = skip_blanks(index);
    let separator = *bytes.get(index)?;
    let separates = match separator {
        b'=' => true,
        // `name::path` is Rust, not a parameter.
        b':' => bytes.get(index + 1) != Some(&b':'),
        _ => false,
    };
    if !separates {
        return None;
    }
    index = skip_blanks(index + 1);
    let debug_option = text[index..].starts_with("Some(");
    if debug_option {
        index += "Some(".len();
    }
    // In libpq's `name='value'` a closing quote is followed by a blank; when
    // it is not (a malformed string), the rest of the word is masked too.
    let libpq = separator == b'=' && !quoted_name && !debug_option;
    // A URL query value is never quoted: a quote there is part of the value.
    let in_query = matches!(before, Some(b'?' | b'&'));
    match bytes.get(index) {
        Some(&quote @ (b'\'' | b'"')) if !in_query => {
            let start = index + 1;
            let mut cursor = start;
            while let Some(&byte) = bytes.get(cursor) {
                match byte {
                    b'\\' => cursor += 2,
                    _ if byte == quote => {
                        let rest = &bytes[cursor + 1..];
                        let glued = rest.iter().take_while(|byte| !byte.is_ascii_whitespace()).count();
                        return Some((start, if libpq && glued > 0 { cursor + 1 + glued } else { cursor }));
                    }
                    _ => cursor += 1,
                }
            }
            // Unterminated: mask to the end rather than guess.
            Some((start, bytes.len()))
        }
        // `token: expired` is prose; only a quoted value follows a `:` in Debug or JSON.
        _ if separator == b':' && !quoted_name => None,
        _ => {
            let ends_value = |byte: u8| match (in_query, scope) {
                (true, Scope::Whole) => byte == b'&',
                (true, Scope::Embedded) => byte == b'&' || byte == b'"' || byte.is_ascii_whitespace(),
                (false, _) if quoted_name => matches!(byte, b',' | b'}' | b']') || byte.is_ascii_whitespace(),
                (false, _) => byte.is_ascii_whitespace(),
            };
            let mut length = bytes[index..].iter().take_while(|&&byte| !ends_value(byte)).count();
            // Already masked and followed by punctuation (`password=***: next`):
            // keep the punctuation, which belongs to the sentence.
            let value = &text[index..index + length];
            if let Some(after) = value.strip_prefix(MASK)
                && after.bytes().all(|byte| matches!(byte, b':' | b',' | b';' | b'.' | b')' | b']' | b'}'))
            {
                length = MASK.len();
            }
            (length > 0).then_some((index, index + length))
        }
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |offset: usize| bytes.get(index + offset).and_then(|&b| (b as char).to_digit(16));
        match (bytes[index], hex(1), hex(2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A driver error made safe to print and to keep as the `source` of a port
/// error: its message and each cause's message with every secret masked
/// (see [`redact_text`]), and the SQLSTATE the server sent, if any.
///
/// The driver error itself is not kept: its `Display` and `Debug`, and its
/// causes', may quote a connection string, and a caller walking the chain
/// could print them. What is kept is enough to act on: the SQLSTATE
/// ([`Redacted::sqlstate`]) and the text.
///
/// sqlx's errors quote their cause in their own message (`error returned
/// from database: {cause}`); a cause whose masked text its parent already
/// shows is left out of the chain, so a chain printed link by link does not
/// repeat itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The masked message of this link.
    message: String,
    /// The SQLSTATE of this link or of the first cause that has one.
    sqlstate: Option<String>,
    /// The next masked link.
    source: Option<Box<Redacted>>,
}

impl Redacted {
    /// Masks `error` and its chain of causes.
    pub fn new(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut links: Vec<(String, Option<String>)> = Vec::new();
        let mut next = Some(error);
        while let Some(link) = next {
            let message = redact_text(&link.to_string());
            let code = sqlstate_of(link);
            match links.last_mut() {
                // Already quoted by its parent: only its SQLSTATE is new.
                Some((parent, parent_code)) if parent.contains(message.as_str()) => {
                    if parent_code.is_none() {
                        *parent_code = code;
                    }
                }
                _ => links.push((message, code)),
            }
            next = link.source();
        }
        let mut chain: Option<Redacted> = None;
        for (message, code) in links.into_iter().rev() {
            let sqlstate = code.or_else(|| chain.as_ref().and_then(|next| next.sqlstate.clone()));
            chain = Some(Redacted { message, sqlstate, source: chain.map(Box::new) });
        }
        chain.unwrap_or_else(|| Redacted { message: String::new(), sqlstate: None, source: None })
    }

    /// The SQLSTATE the server sent (`23514`, `40001`, ...), from this link
    /// or the first cause that has one; `None` for errors that never reached
    /// a server (refused connections, TLS, configuration).
    pub fn sqlstate(&self) -> Option<&str> {
        self.sqlstate.as_deref()
    }

    /// The SQLSTATE of the first [`Redacted`] in `error`'s chain (`error`
    /// itself included), such as a port error whose source is one.
    pub fn sqlstate_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a str> {
        let mut next = Some(error);
        while let Some(link) = next {
            if let Some(redacted) = link.downcast_ref::<Redacted>() {
                return redacted.sqlstate();
            }
            next = link.source();
        }
        None
    }
}

impl From<&sqlx::Error> for Redacted {
    fn from(error: &sqlx::Error) -> Self {
        Redacted::new(error)
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Redacted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|next| next as &(dyn std::error::Error + 'static))
    }
}

/// The SQLSTATE of one link of a chain, when it is a server error.
fn sqlstate_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(sqlx::Error::Database(database)) = error.downcast_ref::<sqlx::Error>() {
        return database.code().map(std::borrow::Cow::into_owned);
    }
    error.downcast_ref::<sqlx::postgres::PgDatabaseError>().map(|database| database.code().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Secrets with the characters that break naive parsers.
    const SECRETS: [&str; 6] = ["hunter2xyz", "p@ss@Qx7wz", "a/b+c=Dz9k", "sp ace'q\\Uo8te", "h#ash?x&y", "Ünï©ødé"];

    /// Percent-encodes everything but unreserved characters, as a careful user would.
    fn encode(secret: &str) -> String {
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect()
    }

    /// Asserts that no form of `secret` (raw, percent-encoded, or a
    /// distinctive piece of it) survives, and that every `kept` text does.
    fn check(input: &str, secret: &str, kept: &[&str]) {
        for output in [redact_text(input), redact_connection_string(input)] {
            assert_secret_gone(&output, secret, input);
            for part in kept {
                assert!(output.contains(part), "{part:?} lost from {input:?}: {output:?}");
            }
        }
    }

    fn assert_secret_gone(output: &str, secret: &str, input: &str) {
        let encoded = encode(secret);
        let mut pieces = vec![secret.to_string(), encoded];
        // Every run of 4+ characters between the secret's special characters.
        pieces.extend(
            secret.split(|c: char| !c.is_alphanumeric()).filter(|piece| piece.chars().count() >= 4).map(str::to_string),
        );
        for piece in pieces {
            assert!(!output.contains(&piece), "{piece:?} of {secret:?} survives in {output:?} (from {input:?})");
        }
    }

    #[test]
    fn url_userinfo_passwords_are_masked_even_when_malformed() {
        for secret in SECRETS {
            let encoded = encode(secret);
            check(
                &format!("postgres://alice:{encoded}@db.example.com:5432/app"),
                secret,
                &["postgres://alice:***@db.example.com:5432/app"],
            );
            // Unencoded, as people paste it: @, /, ?, # and spaces inside.
            let raw = format!("postgresql://alice:{secret}@db.example.com/app?sslmode=require");
            assert_secret_gone(&redact_connection_string(&raw), secret, &raw);
            assert!(redact_connection_string(&raw).starts_with("postgresql://alice:***@"), "{raw}");
        }
        check("postgres://u:p@ss@host/db", "p@ss", &["postgres://u:***@host/db"]);
        check("postgres://u:pw@h:99999/db", "pw@", &["postgres://u:***@h:99999/db"]);
        check("postgres://u:a/b@c@h/db?x=1", "a/b@c", &["postgres://u:***@h/db?x=1"]);
        check("postgres://u:pa?ss@h/db", "pa?ss", &["postgres://u:***@h/db"]);
        check("postgres://u:hunter2@h1:5432,h2:5433/db", "hunter2", &["h1:5432,h2:5433/db"]);
        assert_eq!(
            redact_text("failed: postgres://u:p4ss@h/db and postgres://x@y/z"),
            "failed: postgres://u:***@h/db and postgres://x@y/z"
        );
        assert_eq!(
            redact_text("a:postgres://u:pw1@h/d,postgres://v:pw2@i/e"),
            "a:postgres://u:***@h/d,postgres://v:***@i/e"
        );
    }

    #[test]
    fn urls_without_passwords_are_left_alone() {
        for text in [
            "postgres://alice@db.example.com:5432/app?sslmode=require&application_name=x",
            "postgres://db.example.com:5432/app?options=endpoint%3Dep-123",
            "see https://docs.example.com/a:b for more",
            "sslmode=verify-full key=value statement_timeout=300",
        ] {
            assert_eq!(redact_text(text), text);
            assert_eq!(redact_connection_string(text), text);
        }
    }

    #[test]
    fn an_ambiguous_at_sign_costs_the_host_not_a_password() {
        // Either a password `pw@h:5432/db?app=me` or an `@` in a query value: the longer is masked.
        assert_eq!(redact_text("postgres://u:pw@h:5432/db?app=me@x"), "postgres://u:***@x");
        assert_eq!(redact_text("postgres://h:5432/db?app=me@x"), "postgres://h:***@x");
        assert_eq!(redact_text("postgres://u@h/db?app=me@x"), "postgres://u@h/db?app=me@x");
        // What strata prints itself encodes the query's `@`, so nothing is lost there.
        let url = Url::parse("postgres://u:pw@h:5432/db?application_name=me@x&password=two").unwrap();
        assert_eq!(redact_url(&url), "postgres://u:***@h:5432/db?application_name=me%40x&password=***");
    }

    #[test]
    fn query_parameters_with_secret_names_are_masked() {
        for secret in SECRETS {
            let encoded = encode(secret);
            for name in ["password", "PASSWORD", "Password", "sslpassword", "pass%77ord", "api_token", "client_secret"]
            {
                let input = format!("postgres://alice@db.example.com:5432/app?sslmode=require&{name}={encoded}&x=1");
                check(&input, secret, &["postgres://alice@db.example.com:5432/app?sslmode=require", "&x=1"]);
                let first = format!("postgres://db.example.com/app?{name}={encoded}");
                check(&first, secret, &[&format!("?{name}=***")]);
            }
            // Unencoded in a whole DATABASE_URL: the value runs to the next `&`.
            let raw = format!("postgres://alice@h/app?password={secret}");
            assert_secret_gone(&redact_connection_string(&raw), secret, &raw);
        }
        check("postgres://u:one@h/db?password=two", "one", &["postgres://u:***@h/db?password=***"]);
        check("postgres://u:one@h/db?password=two", "two", &[]);
        check(
            "postgres://h/db?sslkey=/home/u/.postgresql/client.key&sslmode=verify-full",
            "client.key",
            &["sslkey=***&sslmode=verify-full"],
        );
    }

    #[test]
    fn libpq_keyword_value_strings_are_masked() {
        check("host=h user=u password=hunter2 dbname=d", "hunter2", &["host=h user=u password=*** dbname=d"]);
        check("host=h password = hunter2 port=5432", "hunter2", &["host=h", "port=5432"]);
        check(r"host=h password='a b\'cdef' dbname=d", "a b\\'cdef", &["host=h password='***' dbname=d"]);
        check(r"host=h password='a b\'cdef' dbname=d", "cdef", &[]);
        check("password='unterminated secret", "unterminated secret", &[]);
        check("user=u sslpassword=hunter2\tdbname=d", "hunter2", &["user=u", "\tdbname=d"]);
        for secret in SECRETS {
            let quoted = secret.replace('\\', "\\\\").replace('\'', "\\'");
            check(&format!("host=h password='{quoted}' dbname=d"), secret, &["host=h", "dbname=d"]);
        }
    }

    #[test]
    fn debug_and_json_renderings_are_masked() {
        check(
            r#"PgConnectOptions { host: "h", password: Some("hunter2"), port: 5432 }"#,
            "hunter2",
            &[r#"host: "h""#, "port: 5432"],
        );
        check(r#"{"url":"postgres://h/db","password":"hunter2","n":1}"#, "hunter2", &[r#""password":"***""#]);
        check(r#"{"token": 12345678, "n": 1}"#, "12345678", &[r#""n": 1"#]);
        check(r#"error=password authentication failed for user "u""#, "hunter2", &["authentication failed"]);
        // Masked text stays as it is, with the punctuation after it.
        let twice = "opening postgres://u:***@h/db?password=***: refused";
        assert_eq!(redact_text(twice), twice);
        assert_eq!(redact_text("x password=hunter2: refused"), "x password=*** refused");
        // Prose is not a parameter.
        assert_eq!(redact_text("token: expired"), "token: expired");
        assert_eq!(redact_text("WHERE key = 'bars_layout'"), "WHERE key = 'bars_layout'");
    }

    #[test]
    fn parsed_urls_print_without_any_secret() {
        let url =
            Url::parse("postgres://alice:hunter2@h:5432/db?sslmode=require&password=two2two&PASSWORD=three333#four4")
                .unwrap();
        let shown = redact_url(&url);
        assert_eq!(shown, "postgres://alice:***@h:5432/db?sslmode=require&password=***&PASSWORD=***");
        let url = Url::parse("postgres://h/db?pass%77ord=hunter2").unwrap();
        assert!(!redact_url(&url).contains("hunter2"), "{}", redact_url(&url));
    }

    /// Random secrets over every awkward character, in every form: no
    /// secret survives, and the host and the database name do.
    #[test]
    fn random_secrets_never_survive_in_any_form() {
        const ALPHABET: &[u8] = b"abcXYZ0189@/?#&=:;'\"\\ %+*!$()[]{},.<>~`";
        let mut state: u64 = 0x5eed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for round in 0..2_000 {
            let length = 1 + (next() % 12) as usize;
            let noise: String =
                (0..length).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char).collect();
            // A distinctive core makes any leak visible; the noise around it is what parsers trip on.
            let secret = format!("{noise}Sx{round}Kq{noise}");
            let core = format!("Sx{round}Kq");
            let encoded = encode(&secret);
            let libpq = secret.replace('\\', "\\\\").replace('\'', "\\'");
            let debug = format!("{secret:?}");
            let both = [
                format!("postgres://alice:{encoded}@db.example.com:5432/app?sslmode=require"),
                format!("postgres://alice@db.example.com:5432/app?sslmode=require&password={encoded}&x=1"),
                format!("postgresql://db.example.com/app?sslpassword={encoded}"),
                format!("host=db.example.com password='{libpq}' dbname=app"),
                format!("PgConnectOptions {{ host: \"db.example.com\", password: Some({debug}), database: \"app\" }}"),
                format!("connecting to postgres://alice:{encoded}@db.example.com/app failed: refused"),
            ];
            for input in &both {
                for output in [redact_text(input), redact_connection_string(input)] {
                    assert!(!output.contains(&core), "{secret:?} survives in {output:?} (from {input:?})");
                    assert!(output.contains("db.example.com") && output.contains("app"), "{output:?} (from {input:?})");
                }
            }
            // As pasted, unencoded, the whole text being the DATABASE_URL.
            let mut whole = vec![format!("postgres://alice:{secret}@db.example.com/app")];
            if !secret.contains('&') {
                whole.push(format!("postgres://alice@db.example.com/app?password={secret}"));
            }
            if !secret.contains(char::is_whitespace) {
                whole.push(format!("host=db.example.com password={secret} dbname=app"));
            }
            for input in &whole {
                let output = redact_connection_string(input);
                assert!(!output.contains(&core), "{secret:?} survives in {output:?} (from {input:?})");
            }
        }
    }

    /// The store's own error for a server that refuses connections (after
    /// its retries) and the configuration's `Debug` show no secret.
    #[tokio::test]
    async fn store_errors_and_debug_show_no_secret() {
        let url = "postgres://alice:Fi7rstSecret@127.0.0.1:1/app?password=Se2condSecret&sslpassword=Th3irdSecret";
        let mut config = crate::NeonConfig::from_url(url).unwrap();
        config.retry_budget = std::time::Duration::from_millis(300);
        config.acquire_timeout = std::time::Duration::from_secs(2);
        let shown = format!("{config:?} {}", config.redacted_url());
        let error = crate::NeonStore::open(config).await.unwrap_err();
        for text in [shown, error.to_string(), format!("{error:?}")] {
            for secret in ["Fi7rstSecret", "Se2condSecret", "Th3irdSecret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("127.0.0.1:1"), "{text}");
        }
    }

    #[test]
    fn secret_names() {
        for name in ["password", "sslpassword", "PASSWORD", "passwd", "pwd", "pass%77ord", "api_key", "sslkey", "token"]
        {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["key", "host", "user", "sslmode", "dbname", "application_name", "options", "channel_binding"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
