//! `strata doctor` on an efs dataset: `efs.mount` (the filesystem under the
//! root as the mount table, `/proc/self/mounts`, describes it: NFS v4.1,
//! mounted `hard`, read-write) and `efs.publish` (a file staged and fsynced
//! in `_strata/staging/`, published by `link(2)` as the dataset publishes
//! its files, read back, and removed).

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use strata_core::doctor::{self, Check, Severity};

use crate::layout::{self, META_DIR};
use crate::publish::{self, Published};

/// Options AWS recommends for mounting EFS ("Additional mounting considerations").
pub const RECOMMENDED_OPTIONS: &str = "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport";

/// The efs checks for the dataset at `root`, in catalog order.
pub async fn diagnose(root: &Path) -> Vec<Check> {
    let root = root.to_path_buf();
    let shown = root.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mounts = fs::read_to_string("/proc/self/mounts");
        vec![mount_check(&root, mounts.as_deref().ok()), publish_check(&root)]
    })
    .await
    .unwrap_or_else(|error| {
        vec![
            Check::fail(&doctor::EFS_MOUNT, format!("cannot check {shown}: {error}"), "run strata doctor again"),
            Check::skip(&doctor::EFS_PUBLISH, "the dataset could not be checked"),
        ]
    })
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// What is mounted (`fs-1234.efs.us-east-1.amazonaws.com:/`, `/dev/sda1`).
    pub device: String,
    /// Where.
    pub mount_point: PathBuf,
    /// Filesystem type (`nfs4`, `ext4`, `tmpfs`, `overlay`).
    pub fs_type: String,
    /// Mount options, in order.
    pub options: Vec<String>,
}

impl MountEntry {
    /// The value of option `name` (`vers` in `vers=4.1`), or `Some("")` for a flag that is set.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find_map(|option| match option.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if option == name => Some(""),
            _ => None,
        })
    }
}

/// Parses `/proc/self/mounts` (fstab format; `\040`-style octal escapes in fields).
pub fn parse_mounts(table: &str) -> Vec<MountEntry> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point, fs_type, options) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            Some(MountEntry {
                device: unescape(device),
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_string(),
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes of spaces, tabs, newlines and backslashes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[index], octal) {
            (b'\\', Some(digits)) => {
                out.push(digits.iter().fold(0u8, |value, digit| value.wrapping_mul(8).wrapping_add(digit - b'0')));
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path` (absolute, resolved): the last entry whose
/// mount point is the longest prefix of it, component by component.
pub fn mount_of<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let mut best: Option<&MountEntry> = None;
    for entry in entries {
        if path.starts_with(&entry.mount_point)
            && best.is_none_or(|found| entry.mount_point.components().count() >= found.mount_point.components().count())
        {
            best = Some(entry);
        }
    }
    best
}

/// `path` made absolute with symbolic links resolved; a part that does not
/// exist yet is kept as written under its nearest existing ancestor.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return rest.iter().rev().fold(resolved, |path, part: &Component<'_>| path.join(part));
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

fn mount_check(root: &Path, table: Option<&str>) -> Check {
    let kind = &doctor::EFS_MOUNT;
    let Some(table) = table else {
        return Check::skip(kind, "no mount table (/proc/self/mounts) on this system");
    };
    let resolved = resolve(root);
    let entries = parse_mounts(table);
    let Some(entry) = mount_of(&entries, &resolved) else {
        return Check::skip(kind, format!("no mount in /proc/self/mounts holds {}", resolved.display()));
    };
    let shown = root.display();
    let place =
        format!("{} ({} from {}, mounted at {})", shown, entry.fs_type, entry.device, entry.mount_point.display());
    let facts = |check: Check| {
        check
            .with_fact("fs_type", &entry.fs_type)
            .with_fact("mount_point", entry.mount_point.display())
            .with_fact("device", &entry.device)
            .with_fact("options", entry.options.join(","))
    };
    if entry.option("ro").is_some() {
        return facts(Check::fail(
            kind,
            format!("{place} is mounted read-only: nothing can be written"),
            format!("remount it read-write (mount -o remount,rw {})", entry.mount_point.display()),
        ))
        .with_severity(Severity::Critical);
    }
    let nfs = entry.fs_type == "nfs4" || entry.fs_type == "nfs";
    if !nfs {
        return facts(Check::fail(
            kind,
            format!("{place}: not NFS, so only this machine sees the dataset (fine for one machine)"),
            format!(
                "for workers on several machines mount the EFS share (mount -t nfs4 -o {RECOMMENDED_OPTIONS} \
                 FS:/ /mnt/efs) and point STRATA_EFS_ROOT at it"
            ),
        ));
    }
    let version = entry.option("vers").or_else(|| entry.option("nfsvers")).unwrap_or(if entry.fs_type == "nfs4" {
        "4"
    } else {
        "3"
    });
    let soft = entry.option("soft").is_some() || entry.option("softerr").is_some();
    let mut problems = Vec::new();
    if soft {
        problems
            .push("mounted soft: a slow server makes writes fail half-done (AWS warns soft mounts risk corruption)");
    }
    if !matches!(version, "4.1" | "4.2") {
        problems.push("not NFS v4.1: EFS is tested and recommended with v4.1");
    }
    let missing: Vec<&str> = ["hard", "noresvport"].into_iter().filter(|flag| entry.option(flag).is_none()).collect();
    if problems.is_empty() {
        let note =
            if missing.is_empty() { String::new() } else { format!("; AWS also recommends {}", missing.join(", ")) };
        return facts(Check::pass(kind, format!("{place}: NFS v{version}, hard{note}")));
    }
    facts(Check::fail(
        kind,
        format!("{place}: NFS v{version}, {}", problems.join("; ")),
        format!("remount with -o {RECOMMENDED_OPTIONS}"),
    ))
}

fn publish_check(root: &Path) -> Check {
    let kind = &doctor::EFS_PUBLISH;
    if !root.is_dir() {
        return Check::fail(
            kind,
            format!("{} is not a directory (no dataset, or the share is not mounted)", root.display()),
            format!("mount the share, or create the dataset's root (mkdir -p {})", root.display()),
        );
    }
    let started = Instant::now();
    match publish_round_trip(root) {
        Ok(meta) => Check::pass(
            kind,
            format!(
                "staged, fsynced, published by link, read back and removed in {:.1} ms under {}",
                started.elapsed().as_secs_f64() * 1e3,
                meta.display()
            ),
        )
        .with_fact("publish_ms", format!("{:.2}", started.elapsed().as_secs_f64() * 1e3)),
        Err(error) => Check::fail(
            kind,
            format!("a publish under {} failed: {error}", root.display()),
            "give this user read and write access to the dataset root, on a read-write mount with free space",
        ),
    }
}

/// Stages a probe file, publishes it by link beside the dataset's
/// bookkeeping, reads it back, and removes both names; returns the folder.
fn publish_round_trip(root: &Path) -> strata_core::Result<PathBuf> {
    let meta = root.join(META_DIR);
    let staging = layout::staging_dir(root);
    publish::ensure_dir(root, &staging)?;
    let content = format!("strata doctor {} {}\n", std::process::id(), layout::unique_id());
    let staged = publish::write_staged(&staging, "doctor", |mut out, _| {
        std::io::Write::write_all(&mut out, content.as_bytes())
            .map_err(|error| crate::error::io_error("writing", &staging, error))?;
        Ok(out)
    })?;
    let target = meta.join(format!("doctor-{}.probe", layout::unique_id()));
    let outcome = (|| {
        match publish::publish_no_replace(&staged, &target)? {
            Published::Ours => {}
            Published::Taken => {
                return Err(strata_core::StoreError::internal(
                    crate::BACKEND,
                    format!("{} already names another file", target.display()),
                ));
            }
        }
        publish::fsync_dir(&meta)?;
        let read = fs::read_to_string(&target).map_err(|error| crate::error::io_error("reading", &target, error))?;
        if read != content {
            return Err(strata_core::StoreError::internal(
                crate::BACKEND,
                format!("{} read back other bytes than were written", target.display()),
            ));
        }
        Ok(())
    })();
    let removed = publish::remove_if_present(&target).and(publish::remove_if_present(&staged));
    outcome?;
    removed?;
    publish::fsync_dir(&meta)?;
    Ok(meta)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_core::doctor::Status;

    const TABLE: &str = "\
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
fs-1.efs.us-east-1.amazonaws.com:/ /mnt/efs nfs4 rw,relatime,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,noresvport,proto=tcp,timeo=600,retrans=2,sec=sys 0 0
server:/export /mnt/soft nfs4 rw,vers=4.0,soft,proto=tcp 0 0
/dev/sdb1 /mnt/with\\040space ext4 ro,relatime 0 0
";

    #[test]
    fn the_longest_mount_point_holds_a_path_and_escapes_are_read() {
        let entries = parse_mounts(TABLE);
        assert_eq!(entries.len(), 5);
        assert_eq!(mount_of(&entries, Path::new("/mnt/efs/bars")).unwrap().fs_type, "nfs4");
        assert_eq!(mount_of(&entries, Path::new("/mnt/efsx")).unwrap().mount_point, Path::new("/"));
        assert_eq!(mount_of(&entries, Path::new("/tmp/a")).unwrap().fs_type, "tmpfs");
        assert_eq!(mount_of(&entries, Path::new("/mnt/with space/x")).unwrap().device, "/dev/sdb1");
        assert_eq!(entries[2].option("vers"), Some("4.1"));
        assert_eq!(entries[2].option("hard"), Some(""));
        assert_eq!(entries[2].option("soft"), None);
    }

    #[test]
    fn nfs_41_hard_passes_and_everything_else_says_why() {
        let check = |path: &str| mount_check(Path::new(path), Some(TABLE));
        let efs = check("/mnt/efs/bars");
        assert_eq!(efs.status, Status::Pass, "{efs:?}");
        let soft = check("/mnt/soft/bars");
        assert_eq!(soft.status, Status::Fail);
        assert!(soft.finding.contains("soft") && soft.finding.contains("v4.1"), "{}", soft.finding);
        let local = check("/var/data");
        assert_eq!((local.status, local.severity), (Status::Fail, Severity::Warning));
        assert!(local.finding.contains("ext4") && local.finding.contains("not NFS"), "{}", local.finding);
        let read_only = check("/mnt/with space/bars");
        assert_eq!((read_only.status, read_only.severity), (Status::Fail, Severity::Critical));
        assert_eq!(mount_check(Path::new("/x"), None).status, Status::Skip);
    }

    #[test]
    fn a_publish_round_trip_leaves_nothing_behind() {
        let directory = tempfile::tempdir().unwrap();
        let check = publish_check(directory.path());
        assert_eq!(check.status, Status::Pass, "{check:?}");
        let staging = fs::read_dir(layout::staging_dir(directory.path())).unwrap().count();
        let meta: Vec<_> =
            fs::read_dir(directory.path().join(META_DIR)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!((staging, meta.len()), (0, 1), "only the staging folder remains: {meta:?}");
        let missing = publish_check(&directory.path().join("absent"));
        assert_eq!(missing.status, Status::Fail);
    }
}
