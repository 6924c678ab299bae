//! Narrative XHTML (txt-1): well-formed XML (so no HTML entities such as `&reg;`), a `<div>` in
//! the XHTML namespace, only the basic formatting elements of the FHIR narrative rules, no event
//! handlers or `javascript:` links. Parsed with `roxmltree`; also yields the narrative's links
//! and anchors for `resource_rules` to resolve.

const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// The elements a FHIR narrative may use (R4 Narrative, "basic html formatting elements"); a
/// `match`, which compiles to a few comparisons, as every element of every narrative is asked.
fn allowed(name: &str) -> bool {
    matches!(
        name,
        "a" | "abbr"
            | "acronym"
            | "address"
            | "b"
            | "bdo"
            | "big"
            | "blockquote"
            | "br"
            | "caption"
            | "cite"
            | "code"
            | "col"
            | "colgroup"
            | "dd"
            | "dfn"
            | "div"
            | "dl"
            | "dt"
            | "em"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
            | "i"
            | "img"
            | "kbd"
            | "li"
            | "map"
            | "area"
            | "ol"
            | "p"
            | "pre"
            | "q"
            | "samp"
            | "small"
            | "span"
            | "strong"
            | "sub"
            | "sup"
            | "table"
            | "tbody"
            | "td"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "tt"
            | "ul"
            | "var"
            | "bdi"
            | "s"
            | "u"
            | "ins"
            | "del"
    )
}

/// What is wrong with a narrative `div`, if anything (the first problem found).
pub fn problem(div: &str) -> Option<String> {
    if is_plain_and_valid(div) {
        return None;
    }
    problem_by_parsing(div)
}

/// The root every narrative this gateway writes opens with (and most others do).
const PLAIN_ROOT: &[u8] = b"<div xmlns=\"http://www.w3.org/1999/xhtml\">";

/// Whether `div` is a plain narrative that is valid: the plain root, then only tags without
/// attributes (`<p>`, `</p>`, `<br/>`) of allowed elements, properly nested, and ASCII text
/// without control characters (but tab, carriage return and line feed), `&`, `<` or `>`,
/// ending with the root's `</div>`. Every narrative passes
/// here and parsing one into a tree costs about 40,000 instructions (7% of validating a
/// CarePlan), while this scan costs a few per byte. It only ever says "valid": anything outside
/// that subset (attributes, entities, comments, non-ASCII text, whitespace in a tag, a tag that
/// does not close its parent) is left to the parser, so the verdict is the parser's whenever
/// the scan is not sure. `a_plain_narrative_is_judged_as_the_parser_judges_it` compares the two.
fn is_plain_and_valid(div: &str) -> bool {
    /// Deeper nesting goes to the parser (its own limits then apply).
    const MOST_OPEN: usize = 64;
    let Some(mut rest) = div.as_bytes().strip_prefix(PLAIN_ROOT) else {
        return false;
    };
    // Text is plain when it is ASCII without control characters (but tab, carriage return and
    // line feed), entities, or `>` (tested per text below); whole-string tests, as they are fast.
    if !rest.is_ascii()
        || super::primitive::control_character(rest).is_some()
        || memchr::memchr(b'&', rest).is_some()
    {
        return false;
    }
    let mut open: [&[u8]; MOST_OPEN] = [b""; MOST_OPEN];
    open[0] = b"div";
    let mut depth = 1;
    loop {
        let Some(text) = memchr::memchr(b'<', rest) else {
            return false;
        };
        if memchr::memchr(b'>', &rest[..text]).is_some() {
            return false;
        }
        let tag = &rest[text + 1..];
        let Some(end) = memchr::memchr(b'>', tag) else {
            return false;
        };
        let inside = &tag[..end];
        rest = &tag[end + 1..];
        // Every name on `open` passed `allowed`, so a closing tag equal to it is one too.
        if let Some(name) = inside.strip_prefix(b"/") {
            if open[depth - 1] != name {
                return false;
            }
            depth -= 1;
            if depth == 0 {
                return rest.is_empty();
            }
        } else {
            let (name, empty) = match inside.strip_suffix(b"/") {
                Some(name) => (name, true),
                None => (inside, false),
            };
            // `allowed` lists lower-case ASCII names only: nothing else gets past it.
            if !std::str::from_utf8(name).is_ok_and(allowed) {
                return false;
            }
            if !empty {
                if depth == MOST_OPEN {
                    return false;
                }
                open[depth] = name;
                depth += 1;
            }
        }
    }
}

/// `problem` by parsing `div` into a tree.
fn problem_by_parsing(div: &str) -> Option<String> {
    let document = match roxmltree::Document::parse(div) {
        Ok(document) => document,
        Err(roxmltree::Error::UnknownEntityReference(name, _)) => {
            return Some(format!(
                "Invalid entity in the XHTML ('&{name};'): only XML's own entities and numeric character references are allowed"
            ));
        }
        Err(err) => return Some(format!("the XHTML is not well-formed XML: {err}")),
    };
    let root = document.root_element();
    if root.tag_name().name() != "div" || root.tag_name().namespace() != Some(XHTML) {
        return Some(format!(
            "the narrative must be a <div> in the XHTML namespace ({XHTML})"
        ));
    }
    for node in root.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        if node.tag_name().namespace() != Some(XHTML) || !allowed(name) {
            return Some(format!("Invalid element name in the XHTML ('{name}')"));
        }
        for attribute in node.attributes() {
            if starts_with_ignoring_case(attribute.name(), "on") {
                let attribute_name = attribute.name().to_ascii_lowercase();
                return Some(format!(
                    "Invalid attribute name in the XHTML ('{attribute_name}' on '{name}'): no event handlers"
                ));
            }
            if starts_with_ignoring_case(attribute.value().trim_start(), "javascript:") {
                return Some(format!("a javascript: link in the XHTML (on '{name}')"));
            }
        }
    }
    None
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The narrative's internal links (`href="#x"` → `x`) and the anchors it defines itself
/// (`id` and `name` attributes); None when it does not parse (`problem` says why).
pub fn links_and_anchors(div: &str) -> Option<(Vec<String>, Vec<String>)> {
    // A plain narrative has no attributes, so neither links nor anchors.
    if is_plain_and_valid(div) {
        return Some((Vec::new(), Vec::new()));
    }
    let document = roxmltree::Document::parse(div).ok()?;
    let mut links = Vec::new();
    let mut anchors = Vec::new();
    for node in document.descendants().filter(|n| n.is_element()) {
        if let Some(target) = node.attribute("href").and_then(|h| h.strip_prefix('#'))
            && !target.is_empty()
        {
            links.push(target.to_owned());
        }
        for name in ["id", "name"] {
            if let Some(anchor) = node.attribute(name) {
                anchors.push(anchor.to_owned());
            }
        }
    }
    Some((links, anchors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn div(inner: &str) -> String {
        format!(r#"<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>"#)
    }

    #[test]
    fn well_formed_basic_xhtml_passes_and_the_rest_is_named() {
        assert_eq!(
            problem(&div("<p>ok &amp; &#174; <a href=\"#x\">x</a></p>")),
            None
        );
        assert!(problem(&div("<p>&reg;</p>")).unwrap().contains("'&reg;'"));
        assert!(
            problem(&div("<p>open"))
                .unwrap()
                .contains("not well-formed")
        );
        assert!(
            problem(&div("<script>x</script>"))
                .unwrap()
                .contains("'script'")
        );
        assert!(
            problem(&div("<p onclick=\"x()\">a</p>"))
                .unwrap()
                .contains("onclick")
        );
        assert!(
            problem(&div("<p ONMouseOver=\"x()\">a</p>"))
                .unwrap()
                .contains("onmouseover")
        );
        assert!(problem(&div("<a href=\"JavaScript:x()\">a</a>")).is_some());
        assert!(problem(&div("<a href=\" javascript:x()\">a</a>")).is_some());
        assert!(
            problem(&div(
                "<a href=\"java\">a</a><table><tbody><tr><td>x</td></tr></tbody></table>"
            ))
            .is_none()
        );
        assert!(problem(&div("<font>x</font>")).unwrap().contains("'font'"));
        assert!(problem("<p xmlns=\"http://www.w3.org/1999/xhtml\">x</p>").is_some());
        assert!(problem("<div>x</div>").is_some());
    }

    /// A plain narrative as the mapping writes them.
    const CARE_PLAN_NARRATIVE: &str = "<div xmlns=\"http://www.w3.org/1999/xhtml\"><h3>Individual treatment plan</h3><p>Status: completed. Period: 2026-09-25 to 2026-11-18.</p><ul><li>Sleep at least 7 hours</li><li>Reduce PHQ-9 score below 10</li></ul><br/></div>";

    #[test]
    fn a_plain_narrative_is_judged_as_the_parser_judges_it() {
        assert!(is_plain_and_valid(CARE_PLAN_NARRATIVE));
        assert_eq!(problem_by_parsing(CARE_PLAN_NARRATIVE), None);
        // Random narratives from pieces inside and outside the plain subset: whenever the scan
        // says valid, the parser and the element rules agree.
        let pieces = [
            "<p>",
            "</p>",
            "<br/>",
            "<ul>",
            "</ul>",
            "<li>",
            "</li>",
            "<div>",
            "</div>",
            "<h3>",
            "</h3>",
            "<font>",
            "</font>",
            "<P>",
            "</P>",
            "text 1.",
            " ",
            "\t",
            "\n",
            "&amp;",
            "&reg;",
            "&#174;",
            "<",
            ">",
            "]]>",
            "\u{e9}",
            "\u{1}",
            "\u{7f}",
            "<p >",
            "<p/>",
            "</>",
            "<>",
            "<!-- c -->",
            "<a href=\"#x\">",
            "</a>",
            "<p onclick=\"x\">",
            "<![CDATA[x]]>",
            "<x:p>",
            "</div >",
            "<div xmlns=\"urn:other\">",
        ];
        let roots = [
            r#"<div xmlns="http://www.w3.org/1999/xhtml">"#,
            r#"<div xmlns='http://www.w3.org/1999/xhtml'>"#,
            "<div>",
            r#"<p xmlns="http://www.w3.org/1999/xhtml">"#,
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % bound as u64).unwrap_or_default()
        };
        let (mut plain, mut not_plain) = (0, 0);
        for _ in 0..50_000 {
            // A well-nested plain narrative, then mostly one or two mutations: a piece from
            // either list inserted anywhere, or a stretch cut out.
            let mut div = String::from(roots[if next(8) == 0 { next(roots.len()) } else { 0 }]);
            let mut open = Vec::new();
            for _ in 0..next(16) {
                match next(4) {
                    0 if !open.is_empty() => {
                        div.push_str(&format!("</{}>", open.pop().unwrap_or("p")))
                    }
                    1 => {
                        let name = ["p", "ul", "li", "div", "h3", "b", "table", "td"][next(8)];
                        div.push_str(&format!("<{name}>"));
                        open.push(name);
                    }
                    2 => div.push_str("<br/>"),
                    _ => div.push_str(["text 1.", " ", "\t", "\n", "a-b: c"][next(5)]),
                }
            }
            while let Some(name) = open.pop() {
                div.push_str(&format!("</{name}>"));
            }
            div.push_str(["</div>", "</div>", "</div>", "</div> ", "</div>x", ""][next(6)]);
            for _ in 0..next(2) {
                let at = next(div.len() + 1);
                if !div.is_char_boundary(at) {
                    continue;
                }
                if next(3) == 0 {
                    let to = (at + next(8)).min(div.len());
                    if div.is_char_boundary(to) {
                        div.replace_range(at..to, "");
                    }
                } else {
                    div.insert_str(at, pieces[next(pieces.len())]);
                }
            }
            if is_plain_and_valid(&div) {
                plain += 1;
                assert_eq!(problem_by_parsing(&div), None, "{div}");
            } else {
                not_plain += 1;
            }
        }
        assert!(
            plain > 5_000 && not_plain > 5_000,
            "{plain} plain, {not_plain} not"
        );
    }

    #[test]
    fn links_and_anchors_are_read() {
        let (links, anchors) = links_and_anchors(&div(
            "<a name=\"top\"/><p id=\"p1\"><a href=\"#a1\">x</a></p>",
        ))
        .unwrap();
        assert_eq!(links, vec!["a1"]);
        assert_eq!(anchors, vec!["top", "p1"]);
    }
}
