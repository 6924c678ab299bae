//! Reads conformance resources from disk into a validation `Registry`: FHIR packages (`.tgz`, or
//! a folder such as `~/.fhir/packages/x#1/package`), single JSON or FHIR XML files (a resource
//! or a Bundle) and folders of such files. The file-reading edge of validation, so that the validator itself
//! does no I/O.

use std::path::Path;

use crate::validation::{Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {message}")]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

/// Adds what `path` holds to `registry`; the number of resources added.
pub fn load(registry: &mut Registry, path: &Path) -> Result<usize, LoadError> {
    let error = |message: String| LoadError {
        path: path.display().to_string(),
        message,
    };
    let read = |file: &Path| std::fs::read(file).map_err(|e| error(e.to_string()));
    if path.is_dir() {
        let dir = if path.join("package").is_dir() {
            path.join("package")
        } else {
            path.to_owned()
        };
        let mut added = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| error(e.to_string()))? {
            let file = entry.map_err(|e| error(e.to_string()))?.path();
            if file.extension().is_none_or(|e| e != "json" && e != "xml")
                || file.ends_with("package.json")
            {
                continue;
            }
            // A folder may hold files that are not resources (an index, a config): skipped.
            added += add_document(registry, &read(&file)?).unwrap_or(0);
        }
        return Ok(added);
    }
    let name = path.to_string_lossy();
    let bytes = read(path)?;
    let added = if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        registry.add_package(&bytes)
    } else {
        add_document(registry, &bytes)
    };
    added.map_err(|e: RegistryError| error(e.to_string()))
}

/// Adds one JSON or FHIR XML document (XML is read with the definitions loaded so far).
fn add_document(registry: &mut Registry, bytes: &[u8]) -> Result<usize, RegistryError> {
    let unmarked = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if unmarked.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'<') {
        return registry.add_json(bytes);
    }
    let text = std::str::from_utf8(unmarked)
        .map_err(|e| RegistryError::NotReadable(format!("not UTF-8: {e}")))?;
    let resource = crate::fhir_xml::to_json(text, registry)
        .map_err(|e| RegistryError::NotReadable(e.to_string()))?;
    registry.add_json(resource.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(url: &str) -> Vec<u8> {
        json!({ "resourceType": "StructureDefinition", "url": url, "type": "Patient",
            "kind": "resource", "derivation": "constraint" })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn packages_folders_and_files_load() {
        let dir = tempfile::tempdir().unwrap();
        // A package folder: `package/` with resources, a manifest and a stray index.
        let package = dir.path().join("pkg/package");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("a.json"), profile("urn:test:a")).unwrap();
        std::fs::write(package.join("package.json"), b"{\"name\":\"x\"}").unwrap();
        std::fs::write(package.join("index.json"), b"not json").unwrap();
        // A .tgz of the same shape.
        let mut tar = tar::Builder::new(Vec::new());
        let bytes = profile("urn:test:b");
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_cksum();
        tar.append_data(&mut header, "package/b.json", bytes.as_slice())
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let tgz = dir.path().join("b.tgz");
        std::fs::write(&tgz, gz.finish().unwrap()).unwrap();
        let single = dir.path().join("c.json");
        std::fs::write(&single, profile("urn:test:c")).unwrap();

        let mut registry = Registry::default();
        assert_eq!(load(&mut registry, &dir.path().join("pkg")).unwrap(), 1);
        assert_eq!(load(&mut registry, &tgz).unwrap(), 1);
        assert_eq!(load(&mut registry, &single).unwrap(), 1);
        for url in ["urn:test:a", "urn:test:b", "urn:test:c"] {
            assert!(registry.structure_definition(url).is_some(), "{url}");
        }
        let err = load(&mut registry, &package.join("index.json")).unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        assert!(load(&mut registry, &dir.path().join("missing.tgz")).is_err());
    }
}
