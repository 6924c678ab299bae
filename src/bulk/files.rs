//! Where an export's files are: `{root}/{job id}/{Type}.ndjson` and `error.ndjson`. The root is
//! a directory every replica sees (a shared volume with several replicas); a file is written
//! under a temporary name and renamed into place, so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The files of one job.
pub struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    /// `None` for a job id that is not a UUID (it could name another directory).
    pub fn of(root: &Path, job_id: &str) -> Option<Self> {
        let id = uuid::Uuid::parse_str(job_id).ok()?;
        Some(Self {
            dir: root.join(id.to_string()),
        })
    }

    /// The path of a file the manifest names; `None` for any other name.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let stem = name.strip_suffix(".ndjson")?;
        let plain = !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphabetic());
        plain.then(|| self.dir.join(name))
    }

    /// Starts over: removes what an interrupted run left, and makes the directory.
    pub fn reset(&self) -> std::io::Result<()> {
        self.remove()?;
        std::fs::create_dir_all(&self.dir)
    }

    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A file being written as `name`, in place once `finish` is called.
    pub fn create(&self, name: &str) -> std::io::Result<NdjsonWriter> {
        let path = self.dir.join(name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let file = std::fs::File::create(&partial)?;
        Ok(NdjsonWriter {
            path,
            partial,
            out: std::io::BufWriter::with_capacity(256 * 1024, file),
            lines: 0,
        })
    }
}

pub struct NdjsonWriter {
    path: PathBuf,
    partial: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    lines: u64,
}

impl NdjsonWriter {
    pub fn write(&mut self, resource: &serde_json::Value) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, resource)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    /// Appends `lines` lines already serialized, each ending in a newline.
    pub fn write_lines(&mut self, bytes: &[u8], lines: u64) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.lines += lines;
        Ok(())
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Flushes, syncs and renames into place; the number of lines.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        std::fs::rename(&self.partial, &self.path)?;
        Ok(self.lines)
    }
}
