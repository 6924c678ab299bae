//! Generated narrative: escaped XHTML that FHIR's narrative rules accept (no scripts, no
//! attributes beyond the namespace, well-formed).

use serde_json::Value;

use crate::json_build::fhir;

/// Escapes text for XHTML element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A narrative builder: headings, paragraphs and lists of escaped text.
#[derive(Default)]
pub struct Narrative {
    body: String,
}

impl Narrative {
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<h3>{}</h3>", escape(text)));
        self
    }
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<p>{}</p>", escape(text)));
        self
    }
    pub fn list<I: IntoIterator<Item = String>>(&mut self, items: I) -> &mut Self {
        let items: Vec<String> = items
            .into_iter()
            .map(|i| format!("<li>{}</li>", escape(&i)))
            .collect();
        if !items.is_empty() {
            self.body.push_str(&format!("<ul>{}</ul>", items.concat()));
        }
        self
    }
    /// The FHIR `text` element, status `generated`.
    pub fn to_text(&self) -> Value {
        fhir!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", self.body) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let mut n = Narrative::default();
        n.paragraph("<script>alert('x')</script> & \"more\"");
        let div = n.to_text()["div"].as_str().unwrap().to_owned();
        assert!(!div.contains("<script>"));
        assert!(
            div.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;")
        );
    }
}
