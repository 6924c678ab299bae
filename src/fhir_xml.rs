//! FHIR's XML format read into its JSON form, so that everything past the edge (the validator,
//! the registry of profiles) knows one form only.
//!
//! XML does not say which elements repeat or which primitive values are JSON numbers and
//! booleans; the R4 definitions do, so the conversion walks the document beside them
//! (`Registry::type_definition`). The rules are those of the R4 XML and JSON pages: a
//! primitive's `value` attribute is its value, its `id` and `extension` go to the `_name`
//! sibling; `id` and an extension's `url` are attributes; a nested resource is the one element
//! inside `contained`, `entry.resource` and the like; a narrative `div` is carried as its XHTML
//! text. Pure: the caller reads the file.

use serde_json::{Map, Value as Json};

use crate::validation::{Registry, names_type};

const FHIR_NAMESPACE: &str = "http://hl7.org/fhir";

/// Why a document could not be read as FHIR XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("not XML: {0}")]
    NotXml(#[from] roxmltree::Error),
    #[error("not FHIR XML: {0}")]
    NotFhir(String),
}

/// The JSON form of the FHIR resource `xml` holds (its root element is the resource).
pub fn to_json(xml: &str, registry: &Registry) -> Result<Json, XmlError> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let document = roxmltree::Document::parse(xml)?;
    // The conversion recurses per element: bound the nesting first, so that no document can
    // exhaust the stack (FHIR resources are a few dozen elements deep).
    // (`ancestors` counts the document node too.)
    let too_deep = document
        .descendants()
        .any(|node| node.ancestors().take(MAX_DEPTH + 2).count() > MAX_DEPTH + 1);
    if too_deep {
        return Err(not_fhir(format!(
            "elements are nested more than {MAX_DEPTH} deep"
        )));
    }
    Converter { registry, xml }.resource(document.root_element())
}

/// The deepest element nesting read (the validator itself stops at far less).
const MAX_DEPTH: usize = 128;

/// Whether `text` looks like XML rather than JSON (its first non-blank character is `<`).
pub fn looks_like_xml(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
}

struct Converter<'a> {
    registry: &'a Registry,
    xml: &'a str,
}

/// What the definitions say of one child element.
struct Child {
    /// Its type code (`string`, `HumanName`, `BackboneElement`, `Resource`, ...).
    type_code: String,
    /// The path its own children are defined under: the type's name for a data type, the
    /// element's path for a backbone element (or the one a `contentReference` names).
    children_path: String,
    repeats: bool,
}

/// The values of one JSON property being gathered, in document order.
struct Property {
    name: String,
    repeats: bool,
    values: Vec<Json>,
    /// For primitives: each value's `_name` part (its `id` and extensions), if any.
    extras: Vec<Option<Json>>,
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

impl Converter<'_> {
    fn resource(&self, node: Node<'_, '_>) -> Result<Json, XmlError> {
        self.in_fhir_namespace(node)?;
        let resource_type = node.tag_name().name();
        let kind = self
            .registry
            .type_definition(resource_type)
            .and_then(|d| d.get("kind").and_then(Json::as_str));
        if kind != Some("resource") {
            return Err(not_fhir(format!(
                "<{resource_type}> is not a FHIR R4 resource type"
            )));
        }
        let mut object = Map::new();
        object.insert("resourceType".into(), Json::String(resource_type.into()));
        self.attributes(node, &mut object, &[])?;
        self.children(node, resource_type, &mut object)?;
        Ok(Json::Object(object))
    }

    fn in_fhir_namespace(&self, node: Node<'_, '_>) -> Result<(), XmlError> {
        match node.tag_name().namespace() {
            Some(FHIR_NAMESPACE) => Ok(()),
            other => Err(not_fhir(format!(
                "<{}> is in the namespace {}, not {FHIR_NAMESPACE}",
                node.tag_name().name(),
                other.unwrap_or("(none)")
            ))),
        }
    }

    /// Adds the element's allowed attributes (`id`, and those in `also`) to `object`; any other
    /// (besides namespace declarations) is not FHIR.
    fn attributes(
        &self,
        node: Node<'_, '_>,
        object: &mut Map<String, Json>,
        also: &[&str],
    ) -> Result<(), XmlError> {
        for attribute in node.attributes() {
            let name = attribute.name();
            if attribute.namespace().is_some() {
                // `xsi:schemaLocation` and the like say nothing about the content.
                continue;
            }
            if name == "id" || also.contains(&name) {
                object.insert(name.into(), Json::String(attribute.value().into()));
            } else {
                return Err(not_fhir(format!(
                    "<{}> has an attribute {name} that FHIR does not define",
                    node.tag_name().name()
                )));
            }
        }
        Ok(())
    }

    /// Adds the properties `node`'s child elements make, defined under `path`, to `object`.
    fn children(
        &self,
        node: Node<'_, '_>,
        path: &str,
        object: &mut Map<String, Json>,
    ) -> Result<(), XmlError> {
        let mut properties: Vec<Property> = Vec::new();
        for child in node.children() {
            if child.is_text() {
                if child.text().is_some_and(|t| !t.trim().is_empty()) {
                    return Err(not_fhir(format!(
                        "{path} holds text outside any value attribute"
                    )));
                }
                continue;
            }
            if !child.is_element() {
                continue;
            }
            let name = child.tag_name().name();
            let definition = self.child(path, name)?;
            let (value, extra) = self.value(child, &definition)?;
            let at = match properties.iter().position(|p| p.name == name) {
                Some(at) => at,
                None => {
                    properties.push(Property {
                        name: name.to_owned(),
                        repeats: definition.repeats,
                        values: Vec::new(),
                        extras: Vec::new(),
                    });
                    properties.len() - 1
                }
            };
            properties[at].values.push(value);
            properties[at].extras.push(extra);
        }
        for property in properties {
            // An element given more often than it may be stays a list: the validator says so.
            let as_list = property.repeats || property.values.len() > 1;
            let has_extras = property.extras.iter().any(Option::is_some);
            let extras = has_extras.then(|| {
                if as_list {
                    Json::Array(
                        property
                            .extras
                            .into_iter()
                            .map(|e| e.unwrap_or(Json::Null))
                            .collect(),
                    )
                } else {
                    property
                        .extras
                        .into_iter()
                        .flatten()
                        .next()
                        .unwrap_or_default()
                }
            });
            let values = if as_list {
                Json::Array(property.values)
            } else {
                property.values.into_iter().next().unwrap_or_default()
            };
            // A primitive given only by its extensions has no value: `null` in a list, absent alone.
            if !values.is_null() {
                object.insert(property.name.clone(), values);
            }
            if let Some(extras) = extras {
                object.insert(format!("_{}", property.name), extras);
            }
        }
        Ok(())
    }

    /// The JSON value of one element and, for a primitive, its `_name` part.
    fn value(
        &self,
        node: Node<'_, '_>,
        definition: &Child,
    ) -> Result<(Json, Option<Json>), XmlError> {
        let code = definition.type_code.as_str();
        if code == "xhtml" {
            // The narrative is XHTML text in JSON: the element as written.
            return Ok((Json::String(self.xml[node.range()].to_owned()), None));
        }
        self.in_fhir_namespace(node)?;
        if code == "Resource" || code == "DomainResource" {
            let mut inner = node.children().filter(|c| c.is_element());
            let (Some(resource), None) = (inner.next(), inner.next()) else {
                return Err(not_fhir(format!(
                    "<{}> must hold exactly one resource",
                    node.tag_name().name()
                )));
            };
            return Ok((self.resource(resource)?, None));
        }
        if let Some(kind) = primitive_kind(code) {
            let value = node
                .attribute("value")
                .map(|v| kind.json(v))
                .unwrap_or(Json::Null);
            let mut extra = Map::new();
            self.attributes(node, &mut extra, &["value"])?;
            extra.remove("value");
            self.children(node, "Element", &mut extra)?;
            let extra = (!extra.is_empty()).then_some(Json::Object(extra));
            return Ok((value, extra));
        }
        let mut object = Map::new();
        let also: &[&str] = if code == "Extension" { &["url"] } else { &[] };
        self.attributes(node, &mut object, also)?;
        self.children(node, &definition.children_path, &mut object)?;
        Ok((Json::Object(object), None))
    }

    /// The definition of the child `name` of the element at `path` (a choice element by its
    /// typed name, `valueString` of `value[x]`).
    fn child(&self, path: &str, name: &str) -> Result<Child, XmlError> {
        let unknown = || not_fhir(format!("{path}.{name} is not an element of FHIR R4"));
        let root = path.split('.').next().unwrap_or(path);
        let elements = self
            .registry
            .type_definition(root)
            .and_then(|d| d.pointer("/snapshot/element"))
            .and_then(Json::as_array)
            .ok_or_else(unknown)?;
        let below = |e: &Json| {
            e["path"]
                .as_str()
                .and_then(|p| p.strip_prefix(path))
                .and_then(|p| p.strip_prefix('.'))
                .filter(|p| !p.contains('.'))
                .map(str::to_owned)
        };
        for element in elements {
            let Some(own) = below(element) else {
                continue;
            };
            let type_code = if own == name {
                match element["type"].as_array().map(Vec::as_slice) {
                    Some([only]) => only["code"].as_str().unwrap_or_default().to_owned(),
                    _ => String::new(),
                }
            } else if let Some(suffix) = own
                .strip_suffix("[x]")
                .and_then(|stem| name.strip_prefix(stem))
            {
                match element["type"].as_array().and_then(|types| {
                    types
                        .iter()
                        .filter_map(|t| t["code"].as_str())
                        .find(|code| names_type(suffix, code))
                }) {
                    Some(code) => code.to_owned(),
                    None => continue,
                }
            } else {
                continue;
            };
            let repeats = element["max"]
                .as_str()
                .is_some_and(|m| m != "0" && m != "1");
            let element_path = element["path"].as_str().unwrap_or_default();
            let children_path = match element["contentReference"].as_str() {
                Some(target) => target.trim_start_matches('#').to_owned(),
                None if matches!(type_code.as_str(), "BackboneElement" | "Element") => {
                    element_path.to_owned()
                }
                None => type_code.clone(),
            };
            return Ok(Child {
                type_code,
                children_path,
                repeats,
            });
        }
        Err(unknown())
    }
}

/// How a primitive type's value attribute is written in JSON.
#[derive(Clone, Copy)]
enum PrimitiveKind {
    Boolean,
    Number,
    Text,
}

impl PrimitiveKind {
    /// The JSON value of `text`; one that does not parse as its type stays a string, for the
    /// validator to report.
    fn json(self, text: &str) -> Json {
        let parsed = match self {
            PrimitiveKind::Boolean => match text {
                "true" => Some(Json::Bool(true)),
                "false" => Some(Json::Bool(false)),
                _ => None,
            },
            PrimitiveKind::Number => serde_json::from_str::<serde_json::Number>(text)
                .ok()
                .map(Json::Number),
            PrimitiveKind::Text => None,
        };
        parsed.unwrap_or_else(|| Json::String(text.to_owned()))
    }
}

/// The kind of a primitive type code (`boolean`, `decimal`, the FHIRPath System types of `id`
/// and `url`), or `None` for a complex type. `xhtml` is not here: a `div` is carried as text.
fn primitive_kind(code: &str) -> Option<PrimitiveKind> {
    let code = code
        .strip_prefix("http://hl7.org/fhirpath/System.")
        .unwrap_or(code);
    match code {
        "boolean" | "Boolean" => Some(PrimitiveKind::Boolean),
        "integer" | "positiveInt" | "unsignedInt" | "decimal" | "Integer" | "Decimal" => {
            Some(PrimitiveKind::Number)
        }
        "xhtml" => None,
        other if other.starts_with(|c: char| c.is_ascii_lowercase()) || other == "String" => {
            Some(PrimitiveKind::Text)
        }
        _ => None,
    }
}

fn not_fhir(message: String) -> XmlError {
    XmlError::NotFhir(message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn convert(xml: &str) -> Result<Json, XmlError> {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        to_json(xml, REGISTRY.get_or_init(Registry::builtin))
    }

    #[test]
    fn a_patient_reads_as_its_json_form() {
        let xml = r##"<?xml version="1.0" encoding="UTF-8"?>
<!-- comments are nothing -->
<Patient xmlns="http://hl7.org/fhir">
  <id value="p1"/>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Jo <b>Doe</b></p></div>
  </text>
  <contained>
    <Organization><id value="org"/><name value="Clinic"/></Organization>
  </contained>
  <extension url="https://example.org/fhir/StructureDefinition/pronouns">
    <valueString value="they/them"/>
  </extension>
  <active value="true"/>
  <name>
    <family value="Doe"/>
    <given value="Jo"/>
    <given id="g2"><extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier"><valueCode value="CL"/></extension></given>
  </name>
  <birthDate value="1980-02-03">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1980-02-03T04:05:00Z"/>
    </extension>
  </birthDate>
  <deceasedBoolean value="false"/>
  <multipleBirthInteger value="2"/>
  <managingOrganization><reference value="#org"/></managingOrganization>
</Patient>"##;
        let expected = json!({
            "resourceType": "Patient",
            "id": "p1",
            "text": {
                "status": "generated",
                "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Jo <b>Doe</b></p></div>"
            },
            "contained": [{ "resourceType": "Organization", "id": "org", "name": "Clinic" }],
            "extension": [{
                "url": "https://example.org/fhir/StructureDefinition/pronouns",
                "valueString": "they/them"
            }],
            "active": true,
            "name": [{
                "family": "Doe",
                "given": ["Jo", null],
                "_given": [null, { "id": "g2", "extension": [{
                    "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier",
                    "valueCode": "CL"
                }] }]
            }],
            "birthDate": "1980-02-03",
            "_birthDate": { "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1980-02-03T04:05:00Z"
            }] },
            "deceasedBoolean": false,
            "multipleBirthInteger": 2,
            "managingOrganization": { "reference": "#org" }
        });
        assert_eq!(convert(xml).unwrap(), expected);
    }

    #[test]
    fn backbone_elements_decimals_and_bundled_resources_follow_their_definitions() {
        let xml = r##"<Bundle xmlns="http://hl7.org/fhir">
  <type value="collection"/>
  <entry>
    <fullUrl value="urn:uuid:6d1c1b5e-8f1a-4c55-9b43-0f6a3c1d2e4f"/>
    <resource>
      <Observation>
        <status value="final"/>
        <code><text value="weight"/></code>
        <valueQuantity><value value="72.50"/><unit value="kg"/></valueQuantity>
        <component>
          <code><text value="x"/></code>
          <valueBoolean value="maybe"/>
        </component>
      </Observation>
    </resource>
  </entry>
</Bundle>"##;
        let bundle = convert(xml).unwrap();
        let observation = &bundle["entry"][0]["resource"];
        assert_eq!(observation["resourceType"], "Observation");
        assert_eq!(observation["valueQuantity"]["value"].as_f64(), Some(72.5));
        // A component repeats; a value that is not a boolean stays text for the validator.
        assert_eq!(observation["component"][0]["valueBoolean"], "maybe");
        assert!(bundle["entry"].is_array() && bundle["type"] == "collection");
    }

    #[test]
    fn what_is_not_fhir_xml_is_said() {
        let unknown =
            convert(r##"<Patient xmlns="http://hl7.org/fhir"><colour value="red"/></Patient>"##);
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("Patient.colour is not an element of FHIR R4")
        );
        let no_namespace = convert(r##"<Patient><active value="true"/></Patient>"##);
        assert!(no_namespace.unwrap_err().to_string().contains("namespace"));
        let not_a_resource = convert(r##"<HumanName xmlns="http://hl7.org/fhir"/>"##);
        assert!(
            not_a_resource
                .unwrap_err()
                .to_string()
                .contains("resource type")
        );
        let broken =
            convert(r##"<Patient xmlns="http://hl7.org/fhir"><active value="true"></Patient>"##);
        assert!(matches!(broken, Err(XmlError::NotXml(_))));
        // A DTD (and so any entity expansion) is refused by the parser.
        let dtd = convert(
            r##"<!DOCTYPE Patient [<!ENTITY x "y">]><Patient xmlns="http://hl7.org/fhir"/>"##,
        );
        assert!(dtd.is_err());
        // Nesting deep enough to exhaust the stack is refused before it is walked.
        let deep = format!(
            r#"<Patient xmlns="http://hl7.org/fhir">{}{}</Patient>"#,
            r#"<extension url="u">"#.repeat(5_000),
            "</extension>".repeat(5_000)
        );
        assert!(
            convert(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested more than")
        );
    }
}
