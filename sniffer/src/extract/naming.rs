//! File names for saved bodies, built from safe parts only.
//!
//! A name is `STREAM-TX-SEGMENT.EXT`: the stream index, the transaction number, the last
//! path segment of the URI reduced to ASCII letters, digits and `._-` (at most
//! [`MAX_SEGMENT`] bytes, never starting with a dot), and an extension chosen from the
//! MIME type. Nothing of the Host header is used, and no `/` can survive, so a name can
//! never leave the output directory.

/// Longest sanitised segment kept, in bytes.
pub const MAX_SEGMENT: usize = 64;

/// The extension for a media type (lower case, without parameters), if one is known.
pub fn extension_for(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "audio/mpeg" | "audio/mp3" | "audio/x-mpeg" | "audio/mpeg3" | "audio/x-mp3" => "mp3",
        "audio/ogg" | "application/ogg" => "ogg",
        "audio/opus" => "opus",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/aac" | "audio/x-aac" | "audio/aacp" => "aac",
        "audio/mp4" | "audio/x-m4a" => "m4a",
        "audio/webm" | "video/webm" => "webm",
        "video/mp4" => "mp4",
        "video/mp2t" | "audio/mp2t" => "ts",
        "video/x-flv" => "flv",
        "video/quicktime" => "mov",
        "video/ogg" => "ogv",
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" | "application/x-gzip" => "gz",
        "application/json" => "json",
        "application/javascript" | "text/javascript" | "application/x-javascript" => "js",
        "application/xml" | "text/xml" => "xml",
        "application/octet-stream" => "bin",
        "application/dash+xml" => "mpd",
        "application/vnd.apple.mpegurl" | "application/x-mpegurl" => "m3u8",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/css" => "css",
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/x-icon" | "image/vnd.microsoft.icon" => "ico",
        _ => return None,
    })
}

/// The last path segment of `uri` (query and fragment dropped), reduced to safe bytes:
/// ASCII letters, digits, `.`, `_` and `-`; any other run of bytes becomes one `_`.
/// Leading dots and underscores are dropped; the result is at most [`MAX_SEGMENT`]
/// bytes and may be empty.
pub fn sanitize_segment(uri: &[u8]) -> String {
    let path_end = uri
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(uri.len());
    let path = &uri[..path_end];
    // A trailing slash names the directory: use the segment before it.
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let seg = trimmed
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(seg.len().min(MAX_SEGMENT));
    for &b in seg {
        if out.len() >= MAX_SEGMENT {
            break;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let start = out.find(|c| c != '.' && c != '_').unwrap_or(out.len());
    out.drain(..start);
    while out.ends_with('.') {
        out.pop();
    }
    out
}

/// The name for a saved body. `attempt` > 0 adds `~N` before the extension, for when
/// the first choice already exists.
pub fn file_name(
    stream: u64,
    number: u64,
    uri: &[u8],
    content_type: Option<&str>,
    attempt: u32,
) -> String {
    file_name_ext(
        stream,
        number,
        uri,
        content_type.and_then(extension_for),
        attempt,
    )
}

/// [`file_name`] with the extension given (from the detected type); `None` takes it
/// from the URI, or `bin`.
pub fn file_name_ext(
    stream: u64,
    number: u64,
    uri: &[u8],
    ext: Option<&str>,
    attempt: u32,
) -> String {
    let seg = sanitize_segment(uri);
    let (stem, ext) = match ext {
        Some(e) => {
            let dotted = format!(".{e}");
            let stem = if seg.len() > dotted.len()
                && seg[seg.len() - dotted.len()..].eq_ignore_ascii_case(&dotted)
            {
                seg[..seg.len() - dotted.len()].to_owned()
            } else {
                seg.clone()
            };
            (stem, e.to_owned())
        }
        None => match seg.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() && !e.is_empty() && e.len() <= 8 => {
                (s.to_owned(), e.to_ascii_lowercase())
            }
            _ => (seg.clone(), "bin".to_owned()),
        },
    };
    let mut name = format!("{stream}-{number}");
    if !stem.is_empty() {
        name.push('-');
        name.push_str(&stem);
    }
    if attempt > 0 {
        name.push_str(&format!("~{attempt}"));
    }
    name.push('.');
    name.push_str(&ext);
    name
}

/// The name of part `part` of a multipart body: [`file_name_ext`] with `-pN` after the
/// transaction number, `source` being the part's file name (or form field, or the URI).
pub fn part_file_name(
    stream: u64,
    number: u64,
    part: u64,
    source: &[u8],
    ext: Option<&str>,
    attempt: u32,
) -> String {
    let name = file_name_ext(stream, number, source, ext, attempt);
    let head = format!("{stream}-{number}");
    format!("{head}-p{part}{}", &name[head.len()..])
}

/// Free text (a station's name, a song's title) reduced to safe bytes: ASCII letters,
/// digits, `-` and `_`; any other run of characters (spaces, dots, slashes, controls,
/// anything not ASCII) becomes one `_`, and none is left at either end. At most `max`
/// bytes; may be empty.
pub fn sanitize_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() >= max {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Longest station name kept in a track's file name, in bytes.
pub const MAX_STATION: usize = 40;

/// Longest title kept in a track's file name, in bytes.
pub const MAX_TITLE: usize = 80;

/// The name of a radio stream's file: `STREAM-TX-STATION-NNN-TITLE.EXT` for track `NNN`
/// (three digits at least), or `STREAM-TX-STATION.EXT` for a stream kept whole; parts
/// that are empty after [`sanitize_text`] are left out.
pub fn track_name(
    stream: u64,
    number: u64,
    station: Option<&str>,
    track: Option<u64>,
    title: Option<&str>,
    ext: &str,
    attempt: u32,
) -> String {
    let mut name = format!("{stream}-{number}");
    let mut part = |p: String| {
        if !p.is_empty() {
            name.push('-');
            name.push_str(&p);
        }
    };
    part(sanitize_text(station.unwrap_or_default(), MAX_STATION));
    if let Some(t) = track {
        part(format!("{t:03}"));
        part(sanitize_text(title.unwrap_or_default(), MAX_TITLE));
    }
    if attempt > 0 {
        name.push_str(&format!("~{attempt}"));
    }
    name.push('.');
    name.push_str(ext);
    name
}

/// The name of a file joined from an HLS playlist's segments: `joined-STREAM-TX-SEGMENT`
/// of the playlist's transaction, `-N` for the N-th part after a discontinuity.
pub fn joined_name(
    stream: u64,
    number: u64,
    playlist_uri: &[u8],
    part: usize,
    ext: &str,
    attempt: u32,
) -> String {
    let seg = sanitize_segment(playlist_uri);
    let stem = seg.strip_suffix(".m3u8").unwrap_or(&seg);
    let mut name = format!("joined-{stream}-{number}");
    if !stem.is_empty() {
        name.push('-');
        name.push_str(stem);
    }
    if part > 0 {
        name.push_str(&format!("-{}", part + 1));
    }
    if attempt > 0 {
        name.push_str(&format!("~{attempt}"));
    }
    name.push('.');
    name.push_str(ext);
    name
}

/// True when `name` is a plain file name that stays inside a directory.
pub fn is_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_safe_parts() {
        assert_eq!(
            file_name(3, 0, b"/music/song.mp3?token=abc", Some("audio/mpeg"), 0),
            "3-0-song.mp3"
        );
        assert_eq!(
            file_name(3, 1, b"/stream.php?id=4", Some("audio/mpeg"), 0),
            "3-1-stream.php.mp3"
        );
        assert_eq!(file_name(0, 2, b"/", Some("text/html"), 0), "0-2.html");
        assert_eq!(file_name(0, 2, b"/a/b.tar", None, 2), "0-2-b~2.tar");
        assert_eq!(file_name(0, 2, b"/a/noext", None, 0), "0-2-noext.bin");
    }

    #[test]
    fn hostile_uris_stay_inside() {
        let long = [b"/".as_slice(), &[b'a'; 4096]].concat();
        let cases: [&[u8]; 9] = [
            b"/../../etc/passwd",
            b"/..",
            b"/%2e%2e/%2e%2e/x",
            b"/a/%2e%2e%2f%2e%2e%2fetc",
            b"/x\0y/../..\0",
            b"/\xff\xfe\x80.mp3",
            b"..\\..\\windows",
            b"http://evil/../../../",
            &long,
        ];
        for uri in cases {
            for ct in [None, Some("audio/mpeg")] {
                let name = file_name(1, 2, uri, ct, 0);
                assert!(is_safe(&name), "{name:?} from {uri:?}");
                assert!(name.starts_with("1-2"), "{name:?}");
                assert!(!name.contains(".."), "{name:?}");
                assert!(name.len() <= 8 + MAX_SEGMENT + 5, "{}", name.len());
            }
        }
        assert_eq!(sanitize_segment(b"/%2e%2e"), "2e_2e");
        assert_eq!(sanitize_segment(b"/..."), "");
        assert_eq!(sanitize_segment(b"/\xff\xfe\x80.mp3"), "mp3");
    }

    #[test]
    fn issue11_track_names_from_hostile_titles_stay_safe() {
        assert_eq!(
            track_name(
                3,
                0,
                Some("Test Radio"),
                Some(2),
                Some("Artist - Title"),
                "mp3",
                0
            ),
            "3-0-Test_Radio-002-Artist_-_Title.mp3"
        );
        assert_eq!(track_name(3, 0, None, None, None, "aac", 1), "3-0~1.aac");
        assert_eq!(
            track_name(3, 0, Some("R"), Some(1234), None, "mp3", 0),
            "3-0-R-1234.mp3"
        );
        let long = "x".repeat(5000);
        for title in [
            "../../etc/passwd",
            "/",
            "..",
            "a\u{0}b\u{1b}[2J\nc",
            "Caf\u{e9} \u{1f3b5} Na\u{ef}ve",
            "   ",
            long.as_str(),
        ] {
            let name = track_name(1, 0, Some(title), Some(1), Some(title), "mp3", 0);
            assert!(is_safe(&name), "{name:?} from {title:?}");
            assert!(!name.contains(".."), "{name:?}");
            assert!(
                name.len() <= 8 + MAX_STATION + 5 + MAX_TITLE + 5,
                "{}",
                name.len()
            );
        }
        assert_eq!(sanitize_text("Caf\u{e9} au lait", 64), "Caf_au_lait");
        assert_eq!(sanitize_text("../..", 64), "");
        assert_eq!(
            joined_name(5, 0, b"/live/radio.m3u8?token=1", 1, "aac", 0),
            "joined-5-0-radio-2.aac"
        );
    }

    #[test]
    fn mime_extensions() {
        assert_eq!(extension_for("audio/mpeg"), Some("mp3"));
        assert_eq!(extension_for("audio/ogg"), Some("ogg"));
        assert_eq!(extension_for("video/mp4"), Some("mp4"));
        assert_eq!(extension_for("application/pdf"), Some("pdf"));
        assert_eq!(extension_for("x/unknown"), None);
    }
}
