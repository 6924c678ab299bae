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
