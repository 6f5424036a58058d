use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

type Fields = Vec<(String, Vec<u8>)>;

/// What a parse produced: the parts announced (headers, all their data), and the verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Out {
    parts: Vec<(Fields, Vec<u8>)>,
    notes: Vec<String>,
    complete: bool,
    skipped: u64,
}

/// One step of input: body bytes, or a capture gap.
#[derive(Clone, Copy, Debug)]
enum Piece<'a> {
    Bytes(&'a [u8]),
    Gap(u64),
}

/// The most memory a parser may hold, notes aside (see the invariants on `Parser`).
fn memory_bound(boundary: &[u8], limits: Limits) -> usize {
    let n = boundary.len() + 3;
    5 * n + 10 + limits.max_head_bytes
}

/// Parses the pieces, checking the event order and the memory bound at every step.
fn parse(boundary: &[u8], limits: Limits, pieces: &[Piece<'_>]) -> Out {
    let mut parser = Parser::new(boundary, limits);
    let mut parts: Vec<(Fields, Vec<u8>)> = Vec::new();
    let mut open = false;
    {
        let mut on = |event: Event<'_>| match event {
            Event::PartStart(head) => {
                assert!(!open, "PartStart inside a part");
                open = true;
                parts.push((head.headers, Vec::new()));
            }
            Event::Data(bytes) => {
                assert!(open, "Data outside a part");
                assert!(!bytes.is_empty(), "empty Data event");
                parts.last_mut().unwrap().1.extend_from_slice(bytes);
            }
            Event::PartEnd => {
                assert!(open, "PartEnd outside a part");
                open = false;
            }
        };
        for piece in pieces {
            match *piece {
                Piece::Bytes(bytes) => parser.feed(bytes, &mut on),
                Piece::Gap(len) => parser.gap(len, &mut on),
            }
            let notes: usize = parser.notes().iter().map(String::len).sum();
            assert!(
                parser.memory() - notes <= memory_bound(boundary, limits),
                "memory {} over the bound {}",
                parser.memory() - notes,
                memory_bound(boundary, limits)
            );
        }
        parser.finish(&mut on);
    }
    assert!(!open, "a part left open after finish");
    assert_eq!(parser.parts(), parts.len() as u64);
    Out {
        parts,
        notes: parser.notes().to_vec(),
        complete: parser.complete(),
        skipped: parser.skipped(),
    }
}

fn parse_whole(boundary: &[u8], body: &[u8]) -> Out {
    parse(boundary, Limits::default(), &[Piece::Bytes(body)])
}

fn field(name: &str, value: &[u8]) -> (String, Vec<u8>) {
    (name.to_owned(), value.to_vec())
}

fn head(fields: &[(&str, &[u8])]) -> PartHead {
    PartHead {
        headers: fields.iter().map(|(n, v)| field(n, v)).collect(),
    }
}

// --- boundary() ---------------------------------------------------------------------

#[test]
fn boundary_quoted_token_and_case_kept() {
    assert_eq!(
        boundary(b"multipart/form-data; boundary=\"----abc\"").unwrap(),
        b"----abc"
    );
    assert_eq!(
        boundary(b"multipart/byteranges; boundary=00000000000000000001").unwrap(),
        b"00000000000000000001"
    );
    assert_eq!(
        boundary(b"Multipart/Form-Data; charset=utf-8; BOUNDARY=AbC ; x=y").unwrap(),
        b"AbC"
    );
    assert_eq!(
        boundary(b"multipart/mixed; boundary=\"a;b c\"").unwrap(),
        b"a;b c"
    );
}

#[test]
fn boundary_refused_when_missing_empty_or_71_chars() {
    assert_eq!(
        boundary(b"multipart/form-data"),
        Err(MultipartError::NoBoundary {
            content_type: "multipart/form-data".into()
        })
    );
    assert_eq!(
        boundary(b"multipart/form-data; charset=utf-8"),
        Err(MultipartError::NoBoundary {
            content_type: "multipart/form-data; charset=utf-8".into()
        })
    );
    assert_eq!(
        boundary(b"multipart/form-data; boundary=\"\""),
        Err(MultipartError::EmptyBoundary {
            content_type: "multipart/form-data; boundary=\"\"".into()
        })
    );
    let ok = "b".repeat(70);
    assert_eq!(
        boundary(format!("multipart/form-data; boundary={ok}").as_bytes()).unwrap(),
        ok.as_bytes()
    );
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    let err = boundary(long.as_bytes()).unwrap_err();
    assert!(matches!(
        err,
        MultipartError::BoundaryTooLong { len: 71, .. }
    ));
    let message = err.to_string();
    assert!(message.contains("71 bytes"), "{message}");
    assert!(
        message.contains("multipart/form-data; boundary=bbb"),
        "{message}"
    );
}

// --- literal bodies -------------------------------------------------------------------

#[test]
fn curl_form_data_with_a_field_and_a_file() {
    let content_type = b"multipart/form-data; boundary=------------------------d74496d66958873e";
    let b = boundary(content_type).unwrap();
    let file: &[u8] = b"ID3\x04\x00\r\n--\r\n--------not the boundary\r\n\x00\xff\r";
    let mut body = Vec::new();
    body.extend_from_slice(b"--------------------------d74496d66958873e\r\n");
    body.extend_from_slice(b"Content-Disposition: form-data; name=\"person\"\r\n\r\n");
    body.extend_from_slice(b"anonymous\r\n");
    body.extend_from_slice(b"--------------------------d74496d66958873e\r\n");
    body.extend_from_slice(
        b"Content-Disposition: form-data; name=\"secret\"; filename=\"song.mp3\"\r\n",
    );
    body.extend_from_slice(b"Content-Type: audio/mpeg\r\n\r\n");
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--------------------------d74496d66958873e--\r\n");

    let out = parse_whole(&b, &body);
    assert_eq!(out.notes, Vec::<String>::new());
    assert!(out.complete);
    assert_eq!(out.parts.len(), 2);
    let field_head = PartHead {
        headers: out.parts[0].0.clone(),
    };
    assert_eq!(field_head.disposition_name().as_deref(), Some("person"));
    assert_eq!(field_head.filename(), None);
    assert_eq!(field_head.content_type(), None);
    assert_eq!(out.parts[0].1, b"anonymous");
    let file_head = PartHead {
        headers: out.parts[1].0.clone(),
    };
    assert_eq!(file_head.disposition_name().as_deref(), Some("secret"));
    assert_eq!(file_head.filename().as_deref(), Some("song.mp3"));
    assert_eq!(file_head.content_type().as_deref(), Some("audio/mpeg"));
    assert_eq!(out.parts[1].1, file);

    // Byte by byte: the same.
    let bytes: Vec<Piece<'_>> = body.chunks(1).map(Piece::Bytes).collect();
    assert_eq!(parse(&b, Limits::default(), &bytes), out);
}

#[test]
fn nginx_byteranges() {
    let b = boundary(b"multipart/byteranges; boundary=00000000000000000001").unwrap();
    let first: Vec<u8> = (0..100u8).collect();
    let second: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(7)).collect();
    let mut body = Vec::new();
    body.extend_from_slice(b"\r\n--00000000000000000001\r\n");
    body.extend_from_slice(b"Content-Type: text/plain\r\nContent-Range: bytes 0-99/1000\r\n\r\n");
    body.extend_from_slice(&first);
    body.extend_from_slice(b"\r\n--00000000000000000001\r\n");
    body.extend_from_slice(
        b"Content-Type: text/plain\r\nContent-Range: bytes 200-299/1000\r\n\r\n",
    );
    body.extend_from_slice(&second);
    body.extend_from_slice(b"\r\n--00000000000000000001--\r\n");

    let out = parse_whole(&b, &body);
    assert_eq!(out.notes, Vec::<String>::new());
    assert!(out.complete);
    assert_eq!(
        out.parts,
        vec![
            (
                vec![
                    field("Content-Type", b"text/plain"),
                    field("Content-Range", b"bytes 0-99/1000"),
                ],
                first
            ),
            (
                vec![
                    field("Content-Type", b"text/plain"),
                    field("Content-Range", b"bytes 200-299/1000"),
                ],
                second
            ),
        ]
    );
    let range = PartHead {
        headers: out.parts[1].0.clone(),
    };
    assert_eq!(
        range.header_str("content-range").as_deref(),
        Some("bytes 200-299/1000")
    );
}

#[test]
fn missing_final_boundary_ends_the_part_with_a_note() {
    let out = parse_whole(b"b", b"--b\r\nX: y\r\n\r\nabc\r\n--");
    assert_eq!(
        out.parts,
        vec![(vec![field("X", b"y")], b"abc\r\n--".to_vec())]
    );
    assert_eq!(
        out.notes,
        vec![
            "no final boundary: the last part (part 1, body offset 0) may be cut at body offset 20"
        ]
    );
    assert!(!out.complete);

    // A delimiter cut before its closing `--`: the part ends there, but not the body.
    let out = parse_whole(b"b", b"--b\r\n\r\nabc\r\n--b");
    assert_eq!(out.parts, vec![(vec![], b"abc".to_vec())]);
    assert_eq!(
        out.notes,
        vec!["no final boundary: the body ended at offset 15 without the closing --boundary--"]
    );
    assert!(!out.complete);
}

#[test]
fn close_delimiter_then_epilogue_ignored_without_note() {
    let out = parse_whole(
        b"b",
        b"\r\n\t\r\n--b\r\n\r\nx\r\n--b--\r\nepilogue --b\r\n\r\nnot a part",
    );
    assert_eq!(out.parts, vec![(vec![], b"x".to_vec())]);
    assert_eq!(out.notes, Vec::<String>::new());
    assert!(out.complete);
}

#[test]
fn non_blank_preamble_is_noted_but_complete() {
    let out = parse_whole(b"b", b"This is a preamble.\r\n--b\r\n\r\nx\r\n--b--");
    assert_eq!(out.parts, vec![(vec![], b"x".to_vec())]);
    assert_eq!(
        out.notes,
        vec!["preamble of 19 bytes before the first boundary ignored"]
    );
    assert!(out.complete);
}

#[test]
fn bare_lf_line_ends_accepted() {
    let out = parse_whole(b"b", b"--b\nX: y\n\nline1\nline2\n--b\n\ndata\r\n--b--\n");
    assert_eq!(
        out.parts,
        vec![
            (vec![field("X", b"y")], b"line1\nline2".to_vec()),
            (vec![], b"data".to_vec()),
        ]
    );
    assert!(out.complete);
}

#[test]
fn transport_padding_allowed_junk_noted() {
    let out = parse_whole(
        b"b",
        b"--b \t\r\n\r\none\r\n--b\t junk\r\n\r\ntwo\r\n--b-- \r\n",
    );
    assert_eq!(
        out.parts,
        vec![(vec![], b"one".to_vec()), (vec![], b"two".to_vec())]
    );
    assert_eq!(
        out.notes,
        vec![
            "part 2 (body offset 14): unexpected bytes after its boundary, ignored to the line end"
        ]
    );
    assert!(!out.complete);
}

#[test]
fn near_boundary_strings_are_data() {
    let data: &[u8] = b"a\r\n--bX\r\n--b-x\r\n--\r\n-b\r\r\n--bb\n-\r";
    let mut body = b"--b\r\n\r\n".to_vec();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--b--");
    let out = parse_whole(b"b", &body);
    assert_eq!(out.parts, vec![(vec![], data.to_vec())]);
    assert!(out.complete);
    for size in 1..body.len() {
        let pieces: Vec<Piece<'_>> = body.chunks(size).map(Piece::Bytes).collect();
        assert_eq!(
            parse(b"b", Limits::default(), &pieces),
            out,
            "chunks of {size}"
        );
    }
}

#[test]
fn empty_parts_and_empty_heads() {
    let out = parse_whole(
        b"b",
        b"--b\r\n\r\n--b\r\nX: y\r\n\r\n--b\r\n\r\n\r\n--b\r\n X\r\n\r\n--b--",
    );
    assert_eq!(
        out.parts,
        vec![
            (vec![], Vec::new()),
            (vec![field("X", b"y")], Vec::new()),
            (vec![], Vec::new()),
        ]
    );
    assert_eq!(
        out.notes,
        vec![
            "part 4 (body offset 29): head does not parse (line 1 of the head continues a field that does not exist); part skipped"
        ]
    );
}

#[test]
fn folded_header_lines_joined() {
    let out = parse_whole(b"b", b"--b\r\nX: a\r\n\t b\r\nY:c\r\n\r\nd\r\n--b--");
    assert_eq!(
        out.parts,
        vec![(vec![field("X", b"a b"), field("Y", b"c")], b"d".to_vec())]
    );
}

#[test]
fn garbage_without_boundary_gives_no_events() {
    let out = parse_whole(b"b", b"hello world, --c\r\n");
    assert_eq!(out.parts, vec![]);
    assert_eq!(
        out.notes,
        vec!["no boundary found in 18 bytes of body: nothing extracted"]
    );
    assert!(!out.complete);
}

#[test]
fn head_that_does_not_parse_skips_its_part() {
    let out = parse_whole(
        b"b",
        b"--b\r\nno colon here\r\n\r\ndata\r\n--b\r\nBad Name: x\r\n\r\n--b\r\n\r\nok\r\n--b--",
    );
    assert_eq!(out.parts, vec![(vec![], b"ok".to_vec())]);
    assert_eq!(
        out.notes,
        vec![
            "part 1 (body offset 0): head does not parse (line 1 of the head has no colon: \"no colon here\"); part skipped",
            "part 2 (body offset 28): head does not parse (line 1 of the head has an invalid field name: \"Bad Name: x\"); part skipped",
        ]
    );
    assert_eq!(out.skipped, 2);
    assert!(!out.complete);
}

#[test]
fn head_longer_than_the_limit_skips_its_part() {
    let limits = Limits {
        max_head_bytes: 32,
        ..Limits::default()
    };
    let mut body = b"--b\r\nX: ".to_vec();
    body.extend_from_slice(&[b'x'; 100]);
    body.extend_from_slice(b"\r\n\r\ndata\r\n--b\r\nY: z\r\n\r\nok\r\n--b--");
    let out = parse(b"b", limits, &[Piece::Bytes(&body)]);
    assert_eq!(out.parts, vec![(vec![field("Y", b"z")], b"ok".to_vec())]);
    assert_eq!(
        out.notes,
        vec!["part 1 (body offset 0): head longer than 32 bytes; part skipped"]
    );
    assert!(!out.complete);
    // A head of exactly the limit, blank line included, is fine.
    let body = b"--b\r\nX: 1234567890123456789012345\r\n\r\nok\r\n--b--";
    let out = parse(b"b", limits, &[Piece::Bytes(body)]);
    assert_eq!(out.parts.len(), 1);
    assert!(out.complete);
}

#[test]
fn head_cut_by_the_next_boundary_skips_its_part() {
    let out = parse_whole(b"b", b"--b\r\nX: y\r\nZ\r\n--b\r\n\r\nok\r\n--b--");
    assert_eq!(out.parts, vec![(vec![], b"ok".to_vec())]);
    assert_eq!(
        out.notes,
        vec![
            "part 1 (body offset 0): no blank line after the head before the next boundary; part skipped"
        ]
    );
}

#[test]
fn parts_beyond_the_limit_skipped_counted_and_noted_once() {
    let mut body = Vec::new();
    for _ in 0..100_000 {
        body.extend_from_slice(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    body.extend_from_slice(b"--b--\r\n");
    let pieces: Vec<Piece<'_>> = body.chunks(64 * 1024).map(Piece::Bytes).collect();

    let out = parse(b"b", Limits::default(), &pieces);
    assert_eq!(out.parts.len(), 10_000);
    assert!(
        out.parts
            .iter()
            .all(|(h, d)| { h == &vec![field("Content-Type", b"text/plain")] && d == b"x" })
    );
    assert_eq!(out.skipped, 90_000);
    let first_skipped = 10_000 * 36;
    assert_eq!(
        out.notes,
        vec![format!(
            "90000 parts beyond the limit of 10000 skipped (the first at body offset {first_skipped})"
        )]
    );
    assert!(!out.complete);

    // Without the limit, all of them, in linear time.
    let unlimited = Limits {
        max_parts: u64::MAX,
        ..Limits::default()
    };
    let out = parse(b"b", unlimited, &pieces);
    assert_eq!(out.parts.len(), 100_000);
    assert!(out.complete);
}

#[test]
fn gap_in_the_middle_of_a_part_cuts_it() {
    let pieces = [
        Piece::Bytes(b"--b\r\nX: 1\r\n\r\nhello wor"),
        Piece::Gap(100),
        Piece::Bytes(b"ld\r\n--b\r\nX: 2\r\n\r\nsecond\r\n--b--"),
    ];
    let out = parse(b"b", Limits::default(), &pieces);
    assert_eq!(
        out.parts,
        vec![
            (vec![field("X", b"1")], b"hello wor".to_vec()),
            (vec![field("X", b"2")], b"second".to_vec()),
        ]
    );
    assert_eq!(
        out.notes,
        vec![
            "part 1 (body offset 0): cut by a capture gap of 100 bytes at body offset 22; its data ends there"
        ]
    );
    assert!(!out.complete);

    // The gap ends right where a boundary line starts: that part is found.
    let pieces = [
        Piece::Bytes(b"--b\r\n\r\nhello\r"),
        Piece::Gap(7),
        Piece::Bytes(b"--b\r\n\r\nsecond\r\n--b--"),
    ];
    let out = parse(b"b", Limits::default(), &pieces);
    assert_eq!(
        out.parts,
        vec![(vec![], b"hello\r".to_vec()), (vec![], b"second".to_vec())]
    );
    assert_eq!(out.notes.len(), 1);
}

#[test]
fn gap_in_a_head_skips_the_part() {
    let pieces = [
        Piece::Bytes(b"--b\r\nX: 1"),
        Piece::Gap(5),
        Piece::Bytes(b"\r\n\r\nlost\r\n--b\r\n\r\nkept\r\n--b--"),
    ];
    let out = parse(b"b", Limits::default(), &pieces);
    assert_eq!(out.parts, vec![(vec![], b"kept".to_vec())]);
    assert_eq!(
        out.notes,
        vec![
            "part 1 (body offset 0): head cut by a capture gap of 5 bytes at body offset 9; part skipped"
        ]
    );
    assert_eq!(out.skipped, 1);
}

#[test]
fn gap_after_the_close_delimiter_is_harmless() {
    let pieces = [
        Piece::Bytes(b"--b\r\n\r\nx\r\n--b--\r\n"),
        Piece::Gap(5),
        Piece::Bytes(b"epilogue"),
    ];
    let out = parse(b"b", Limits::default(), &pieces);
    assert_eq!(out.parts, vec![(vec![], b"x".to_vec())]);
    assert!(out.notes.is_empty());
    assert!(out.complete);
}

// --- heads ----------------------------------------------------------------------------

#[test]
fn quoted_token_and_rfc5987_filenames() {
    let cases: &[(&[u8], Option<&str>, Option<&str>)] = &[
        (
            b"form-data; name=\"file\"; filename=\"a \\\"quoted\\\" name.mp3\"",
            Some("file"),
            Some("a \"quoted\" name.mp3"),
        ),
        (
            b"form-data; name=file; filename=plain.mp3",
            Some("file"),
            Some("plain.mp3"),
        ),
        (
            b"form-data; name=\"f\"; filename=\"fallback.mp3\"; filename*=UTF-8''%E2%82%AC%20rates.mp3",
            Some("f"),
            Some("\u{20ac} rates.mp3"),
        ),
        (
            b"attachment; filename*=iso-8859-1'en'%A3%20rates",
            None,
            Some("\u{a3} rates"),
        ),
        (
            b"form-data; name=\"f\"; filename=\"C:\\Users\\me\\song.mp3\"",
            Some("f"),
            Some("C:\\Users\\me\\song.mp3"),
        ),
        (
            b"form-data; name=\"semi;colon\"; filename=\"a;b.mp3\"",
            Some("semi;colon"),
            Some("a;b.mp3"),
        ),
        (
            b"form-data; NAME=\"x\"; FileName=\"y\"",
            Some("x"),
            Some("y"),
        ),
        (b"form-data; name=\"x\"", Some("x"), None),
    ];
    for (disposition, name, filename) in cases {
        let h = head(&[("content-disposition", disposition)]);
        assert_eq!(
            h.disposition_name().as_deref(),
            *name,
            "{}",
            String::from_utf8_lossy(disposition)
        );
        assert_eq!(
            h.filename().as_deref(),
            *filename,
            "{}",
            String::from_utf8_lossy(disposition)
        );
    }
}

#[test]
fn hostile_filenames_come_through_intact() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"form-data; name=\"f\"; filename=\"../../etc/passwd\"",
            "../../etc/passwd",
        ),
        (
            b"form-data; name=\"f\"; filename=\"/etc/shadow\"",
            "/etc/shadow",
        ),
        (
            b"form-data; name=\"f\"; filename=\"a\x00b.mp3\"",
            "a\0b.mp3",
        ),
        (
            b"form-data; name=\"f\"; filename*=UTF-8''..%2F..%2Fx%00y",
            "../../x\0y",
        ),
    ];
    for (disposition, expected) in cases {
        let mut body = b"--b\r\nContent-Disposition: ".to_vec();
        body.extend_from_slice(disposition);
        body.extend_from_slice(b"\r\n\r\ndata\r\n--b--");
        let out = parse_whole(b"b", &body);
        assert_eq!(
            out.parts.len(),
            1,
            "{}",
            String::from_utf8_lossy(disposition)
        );
        let h = PartHead {
            headers: out.parts[0].0.clone(),
        };
        assert_eq!(h.filename().as_deref(), Some(*expected));
    }
}

#[test]
fn header_helpers() {
    let h = head(&[
        ("Content-Type", b"Audio/MPEG; charset=x"),
        ("X-Thing", b"  v\xff "),
    ]);
    assert_eq!(h.content_type().as_deref(), Some("audio/mpeg"));
    assert_eq!(h.header_str("x-thing").as_deref(), Some("v\u{fffd}"));
    assert_eq!(h.header_str("missing"), None);
    assert_eq!(head(&[("content-type", b" ; a=b")]).content_type(), None);
}

// --- memory ---------------------------------------------------------------------------

#[test]
fn memory_bounded_for_long_parts_and_endless_heads() {
    let b = "b".repeat(70);
    let mut rng = StdRng::seed_from_u64(7);
    // A 4 MB part full of almost-delimiters, fed in random pieces.
    let mut body = format!("--{b}\r\n\r\n").into_bytes();
    let near = format!("\r\n--{}", &b[..69]);
    while body.len() < 4 << 20 {
        body.extend_from_slice(near.as_bytes());
        body.push(b'\r');
    }
    let data_len = body.len() - (b.len() + 6);
    body.extend_from_slice(format!("\r\n--{b}--").as_bytes());
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = rng.random_range(1..200).min(body.len() - at);
        pieces.push(Piece::Bytes(&body[at..at + len]));
        at += len;
    }
    let out = parse(b.as_bytes(), Limits::default(), &pieces);
    assert_eq!(out.parts.len(), 1);
    assert_eq!(out.parts[0].1.len(), data_len);
    assert!(out.complete);

    // A head that never ends: cut at the limit, whatever comes.
    let endless = vec![b'h'; 1 << 20];
    let out = parse(
        b"b",
        Limits::default(),
        &[
            Piece::Bytes(b"--b\r\nX: "),
            Piece::Bytes(&endless),
            Piece::Bytes(&endless),
        ],
    );
    assert!(out.parts.is_empty());
    assert_eq!(out.skipped, 1);
}

// --- the model ------------------------------------------------------------------------

/// A slow whole-buffer parser of the same grammar, written for clarity: the parts it
/// announces and whether the body is complete.
fn model(body: &[u8], boundary: &[u8], limits: Limits) -> (Vec<(Fields, Vec<u8>)>, bool) {
    let dash = [b"--", boundary].concat();
    // Does a delimiter's `--` stand at `at`? Then: is it the close delimiter?
    let delimiter_at = |at: usize| -> Option<bool> {
        if !body[at..].starts_with(&dash) {
            return None;
        }
        match &body[at + dash.len()..] {
            [] | [b'-'] => Some(false),
            [b'-', b'-', ..] => Some(true),
            [b' ' | b'\t' | b'\r' | b'\n', ..] => Some(false),
            _ => None,
        }
    };
    // The first LF at or after `from` that starts a delimiter.
    let next = |from: usize| -> Option<(usize, bool)> {
        (from..body.len())
            .filter(|&i| body[i] == b'\n')
            .find_map(|i| delimiter_at(i + 1).map(|close| (i, close)))
    };
    let first = match delimiter_at(0) {
        Some(close) => Some((0, close)),
        None => next(0).map(|(lf, close)| (lf + 1, close)),
    };
    let Some((mut dash_at, mut close)) = first else {
        return (Vec::new(), false);
    };
    let mut parts = Vec::new();
    let mut lossy = false;
    let mut number = 0;
    loop {
        if close {
            return (parts, !lossy);
        }
        number += 1;
        // The rest of the boundary line.
        let mut j = dash_at + dash.len();
        while j < body.len() && matches!(body[j], b' ' | b'\t') {
            j += 1;
        }
        let rest = &body[j..];
        let content_start = if rest.starts_with(b"\n") {
            j + 1
        } else if rest.starts_with(b"\r\n") {
            j + 2
        } else {
            match rest.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    lossy = true;
                    j + p + 1
                }
                None => return (parts, false),
            }
        };
        let following = next(content_start);
        let content_end = match following {
            Some((lf, _)) if lf > content_start && body[lf - 1] == b'\r' => lf - 1,
            Some((lf, _)) => lf,
            None => body.len(),
        };
        let content = &body[content_start..content_end];
        if number > limits.max_parts {
            lossy = true;
        } else {
            // The head ends at its first empty line.
            let mut line_start = 0;
            let mut split = None;
            for p in (0..content.len()).filter(|&p| content[p] == b'\n') {
                let line = &content[line_start..p];
                if line.is_empty() || line == b"\r" {
                    split = Some(p + 1);
                    break;
                }
                line_start = p + 1;
            }
            let max = limits.max_head_bytes;
            let head = match split {
                Some(end) if end <= max => Some((&content[..end], &content[end..])),
                // A head ended by the next delimiter at a line start, no data.
                None if following.is_some()
                    && line_start == content.len()
                    && content.len() <= max =>
                {
                    Some((content, &content[content.len()..]))
                }
                _ => None,
            };
            match head.map(|(h, d)| (parse_head(h), d)) {
                Some((Ok(fields), data)) => parts.push((fields, data.to_vec())),
                _ => lossy = true,
            }
        }
        match following {
            Some((lf, c)) => {
                dash_at = lf + 1;
                close = c;
            }
            None => return (parts, false),
        }
    }
}

/// Bytes the random bodies are made of: few letters, so that boundaries and near-misses
/// come often.
fn noise(rng: &mut StdRng, boundary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.random_range(0..8) {
        let delimiter = [b"\r\n--", boundary].concat();
        match rng.random_range(0..10) {
            0..=3 => {
                for _ in 0..rng.random_range(1..6) {
                    out.push(b"ab-\r\n \tX:"[rng.random_range(0..9)]);
                }
            }
            4 => {
                // A prefix of a delimiter.
                let len = rng.random_range(1..=delimiter.len());
                out.extend_from_slice(&delimiter[..len]);
            }
            5 => {
                // The boundary without a line end before it.
                out.extend_from_slice(b"--");
                out.extend_from_slice(boundary);
            }
            6 => {
                // A delimiter followed by what makes it data.
                out.extend_from_slice(&delimiter[rng.random_range(0..2)..]);
                // (`-` alone is data only if the next byte is not `-`; at the end a delimiter)
                out.extend_from_slice([&b"X"[..], b"-x", b"a", b"-"][rng.random_range(0..4)]);
            }
            7 => out.push(b'\r'),
            8 => out.extend_from_slice(boundary),
            _ => out.extend_from_slice(b"\r\n"),
        }
    }
    out
}

fn line_end(rng: &mut StdRng) -> &'static [u8] {
    [&b"\r\n"[..], b"\r\n", b"\n"][rng.random_range(0..3)]
}

fn random_head(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..12) {
        0 => b"Content-Disposition: form-data; name=\"f\"; filename=\"x.mp3\"\r\n\r\n".to_vec(),
        1 => b"Content-Type: text/plain\r\nContent-Range: bytes 0-9/10\r\n\r\n".to_vec(),
        2 => b"\r\n".to_vec(),
        3 => b"X: y\n\n".to_vec(),
        4 => b"Folded: a\r\n  b\r\n\r\n".to_vec(),
        5 => b"no colon\r\n\r\n".to_vec(),
        6 => b" leading\r\n\r\n".to_vec(),
        7 => {
            let mut h = b"Long: ".to_vec();
            h.extend(std::iter::repeat_n(b'x', rng.random_range(0..80)));
            h.extend_from_slice(b"\r\n\r\n");
            h
        }
        8 => Vec::new(),
        9 => b"X: y\r\n".to_vec(),
        _ => b"A: 1\r\nB: 2\r\n\r\n".to_vec(),
    }
}

fn random_body(rng: &mut StdRng, boundary: &[u8]) -> Vec<u8> {
    let dash = [b"--", boundary].concat();
    let mut body = Vec::new();
    if rng.random_bool(0.5) {
        // Well-formed, mostly.
        if rng.random_bool(0.3) {
            body.extend(noise(rng, boundary));
        }
        let parts = rng.random_range(0..6);
        for k in 0..parts {
            if k > 0 || !body.is_empty() || rng.random_bool(0.5) {
                body.extend_from_slice(line_end(rng));
            }
            body.extend_from_slice(&dash);
            if rng.random_bool(0.1) {
                body.extend_from_slice([&b" \t"[..], b" junk", b"\r"][rng.random_range(0..3)]);
            }
            body.extend_from_slice(line_end(rng));
            body.extend(random_head(rng));
            body.extend(noise(rng, boundary));
        }
        if rng.random_bool(0.8) {
            body.extend_from_slice(line_end(rng));
            body.extend_from_slice(&dash);
            body.extend_from_slice(b"--");
            if rng.random_bool(0.5) {
                body.extend(noise(rng, boundary));
            }
        }
    } else {
        // Anything made of the same pieces.
        for _ in 0..rng.random_range(0..30) {
            match rng.random_range(0..4) {
                0 => body.extend_from_slice(&dash),
                1 => body.extend(random_head(rng)),
                2 => body.extend_from_slice(line_end(rng)),
                _ => body.extend(noise(rng, boundary)),
            }
        }
    }
    body
}

fn random_splits<'a>(rng: &mut StdRng, body: &'a [u8]) -> Vec<Piece<'a>> {
    let max = [1, 2, 3, 5, 8, 64][rng.random_range(0..6)];
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len = rng.random_range(1..=max).min(body.len() - at);
        pieces.push(Piece::Bytes(&body[at..at + len]));
        at += len;
    }
    pieces
}

fn random_limits(rng: &mut StdRng) -> Limits {
    Limits {
        max_parts: if rng.random_bool(0.3) {
            rng.random_range(1..5)
        } else {
            DEFAULT_MAX_PARTS
        },
        max_head_bytes: if rng.random_bool(0.3) {
            rng.random_range(1..40)
        } else {
            DEFAULT_MAX_HEAD_BYTES
        },
    }
}

fn random_boundary(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(1..5);
    (0..len).map(|_| b"ab-"[rng.random_range(0..3)]).collect()
}

#[test]
fn random_splits_agree_with_the_model() {
    let mut rng = StdRng::seed_from_u64(0x6d70);
    let mut parts_seen = 0;
    for round in 0..4000 {
        let b = random_boundary(&mut rng);
        let limits = random_limits(&mut rng);
        let body = random_body(&mut rng, &b);
        let (parts, complete) = model(&body, &b, limits);
        parts_seen += parts.len();
        let whole = parse(&b, limits, &[Piece::Bytes(&body)]);
        let context = || {
            format!(
                "round {round}, boundary {:?}, limits {limits:?}, body {:?}",
                String::from_utf8_lossy(&b),
                String::from_utf8_lossy(&body)
            )
        };
        assert_eq!(whole.parts, parts, "{}", context());
        assert_eq!(whole.complete, complete, "{}", context());
        for _ in 0..4 {
            let pieces = random_splits(&mut rng, &body);
            assert_eq!(parse(&b, limits, &pieces), whole, "{}", context());
        }
    }
    // The bodies did exercise parts.
    assert!(parts_seen > 3000, "{parts_seen}");
}

#[test]
fn random_splits_around_a_gap_agree() {
    let mut rng = StdRng::seed_from_u64(0x6761);
    for round in 0..2000 {
        let b = random_boundary(&mut rng);
        let limits = random_limits(&mut rng);
        let body = random_body(&mut rng, &b);
        let at = rng.random_range(0..=body.len());
        let len = rng.random_range(0..10);
        let (before, after) = body.split_at(at);
        let whole = parse(
            &b,
            limits,
            &[Piece::Bytes(before), Piece::Gap(len), Piece::Bytes(after)],
        );
        if !whole.notes.iter().any(|n| n.contains("gap")) {
            // Only a gap in the epilogue goes unnoted, and it changes nothing.
            assert_eq!(
                whole,
                parse(&b, limits, &[Piece::Bytes(&body)]),
                "round {round}"
            );
        }
        for _ in 0..3 {
            let mut pieces = random_splits(&mut rng, before);
            pieces.push(Piece::Gap(len));
            pieces.extend(random_splits(&mut rng, after));
            assert_eq!(
                parse(&b, limits, &pieces),
                whole,
                "round {round}, boundary {:?}, gap of {len} at {at}, body {:?}",
                String::from_utf8_lossy(&b),
                String::from_utf8_lossy(&body)
            );
        }
    }
}

#[test]
fn notes_are_capped_and_the_rest_counted() {
    let mut body = Vec::new();
    for _ in 0..150 {
        body.extend_from_slice(b"--b\r\nbad\r\n\r\nx\r\n");
    }
    body.extend_from_slice(b"--b--");
    let out = parse_whole(b"b", &body);
    assert!(out.parts.is_empty());
    assert_eq!(out.skipped, 150);
    assert_eq!(out.notes.len(), MAX_NOTES + 1);
    assert_eq!(out.notes[MAX_NOTES], "50 more notes not kept");
}
