//! Redaction of URL query strings in text that leaves a worker (task errors,
//! encoder logs, worker logs). Presigned URLs carry their credential and
//! signature in the query, so the query goes and the rest stays readable.
//! Written by hand: one scan for `http://`/`https://`; a URL ends at
//! whitespace, a quote or an angle bracket.

use std::borrow::Cow;

/// What a redacted query reads as.
pub const REDACTED: &str = "?<redacted>";

/// `text` with the query string of every http(s) URL replaced by
/// [`REDACTED`].
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("http://") && !lower.contains("https://") {
        return Cow::Borrowed(text);
    }
    let ends_url = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut rest_lower = lower.as_str();
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest_lower.find(scheme))
        .min()
    {
        out.push_str(&rest[..at]);
        let url_len = rest[at..].find(ends_url).unwrap_or(rest.len() - at);
        let url = &rest[at..at + url_len];
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str(REDACTED);
            }
            None => out.push_str(url),
        }
        rest = &rest[at + url_len..];
        rest_lower = &rest_lower[at + url_len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_of_urls_go_and_the_rest_stays() {
        let cases = [
            (
                "open https://s3.example/media/in.mp4?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc: 403 Forbidden",
                "open https://s3.example/media/in.mp4?<redacted> 403 Forbidden",
            ),
            (
                "HTTP://h:3900/b/k?x=1 and 'http://other/p?sig=2' then http://plain/path",
                "HTTP://h:3900/b/k?<redacted> and 'http://other/p?<redacted>' then http://plain/path",
            ),
            ("no urls here?x=1", "no urls here?x=1"),
            ("ends with https://h/k?sig=s", "ends with https://h/k?<redacted>"),
            ("caf\u{e9} https://h/\u{65e5}?s=1 \u{e9}", "caf\u{e9} https://h/\u{65e5}?<redacted> \u{e9}"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_urls(text), want, "{text}");
        }
        assert!(matches!(redact_urls("plain"), Cow::Borrowed(_)));
    }
}
