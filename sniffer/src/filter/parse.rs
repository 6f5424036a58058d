//! The lexer and parser: text to [`Expr`], every error naming its token and column.
//!
//! It follows libpcap's grammar (`grammar.y`) for the subset, including its quirks:
//! - `and` and `or` have equal precedence and group left to right; `not` binds tightest:
//!   `a or b and not c` is `(a or b) and (not c)`;
//! - an address or number standing alone continues the qualifiers of the operand
//!   before it: `port 80 or 8080` is `port 80 or port 8080`, `host a and not b` is
//!   `host a and not host b`; after a parenthesised expression it continues the
//!   qualifiers in force before the parenthesis; at the start it is an error;
//! - a qualifier may apply to a parenthesised list: `host (a or b)`;
//! - numbers: decimal, `0x` hexadecimal, or octal with a leading `0` (`port 010` is 8);
//!   address parts are decimal;
//! - `host 10.1` is the network 10.1.0.0/16, `net 10` is 10.0.0.0/8, `host 10` is
//!   0.0.0.10; the mask forms (`/len`, `mask M`) need `net`, and refuse host bits.

use std::net::Ipv6Addr;

use super::{Dir, Expr, Family, FilterError, Net, Prim};

/// Parse `text` into an expression (not yet normalised). An empty text is `tcp`.
pub(super) fn parse(text: &str) -> Result<Expr, FilterError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        end_column: text.chars().count() + 1,
    };
    if p.peek().kind == Kind::End {
        return Ok(Expr::Const(true));
    }
    let (expr, _) = p.expr(Ctx::None, false)?;
    let t = p.peek();
    match t.kind {
        Kind::End => Ok(expr),
        Kind::RParen => Err(syntax(t, "this ')' has no matching '('".into())),
        _ => Err(syntax(
            t,
            format!("expected 'and' or 'or' before '{}'", t.text),
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    LParen,
    RParen,
    Not,
    And,
    Or,
    Slash,
    End,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// 1-based character column.
    column: usize,
}

/// Characters of a word: names, numbers, IPv4 and IPv6 addresses, port ranges.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '_')
}

fn lex(text: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while let Some(&(start, c)) = chars.get(i) {
        let column = i + 1;
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Kind::LParen, 1),
            ')' => (Kind::RParen, 1),
            '/' => (Kind::Slash, 1),
            '!' if next != Some('=') => (Kind::Not, 1),
            '&' if next == Some('&') => (Kind::And, 2),
            '|' if next == Some('|') => (Kind::Or, 2),
            c if is_word_char(c) => {
                let len = chars[i..]
                    .iter()
                    .take_while(|&&(_, c)| is_word_char(c))
                    .count();
                (Kind::Word, len)
            }
            _ => {
                let end = chars.get(i + 1).map_or(text.len(), |&(e, _)| e);
                let token = &text[start..end];
                let message = match c {
                    '[' | ']' => "byte offsets such as 'tcp[13]' are not supported".to_owned(),
                    '&' | '|' | '+' | '*' | '%' | '^' | '<' | '>' | '=' | '!' => format!(
                        "'{token}': arithmetic and comparisons are not supported (the \
                         operators are and/&&, or/||, not/!)"
                    ),
                    _ => format!("unexpected character '{token}'"),
                };
                return Err(FilterError::Unsupported {
                    column,
                    token: token.to_owned(),
                    message,
                });
            }
        };
        let end = chars.get(i + len).map_or(text.len(), |&(e, _)| e);
        let word = &text[start..end];
        let kind = match (kind, word) {
            (Kind::Word, "and") => Kind::And,
            (Kind::Word, "or") => Kind::Or,
            (Kind::Word, "not") => Kind::Not,
            (kind, _) => kind,
        };
        tokens.push(Token {
            kind,
            text: word,
            column,
        });
        i += len;
    }
    Ok(tokens)
}

/// Protocol qualifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tcp,
    Ip,
    Ip6,
}

/// Address-type qualifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Host,
    Net,
    Port,
    Portrange,
}

/// The qualifiers in force for an id (libpcap's `struct qual`), with the tokens that set
/// them, for messages.
#[derive(Clone, Copy, Debug)]
struct Qual<'a> {
    proto: Option<(Proto, Token<'a>)>,
    dir: Dir,
    kind: Option<(Type, Token<'a>)>,
    /// The last qualifier word, for "after '…'" in messages.
    last: Token<'a>,
}

/// What an id standing alone continues: the qualifiers of the operand before it, or none
/// (at the start, after `tcp`/`ip`/`ip6` alone).
#[derive(Clone, Copy, Debug)]
enum Ctx<'a> {
    None,
    Q(Qual<'a>),
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
    end_column: usize,
}

fn syntax(t: Token<'_>, message: String) -> FilterError {
    FilterError::Syntax {
        column: t.column,
        token: t.text.to_owned(),
        message,
    }
}

fn invalid(t: Token<'_>, message: String) -> FilterError {
    FilterError::Invalid {
        column: t.column,
        token: t.text.to_owned(),
        message,
    }
}

fn proto_of(word: &str) -> Option<Proto> {
    match word {
        "tcp" => Some(Proto::Tcp),
        "ip" => Some(Proto::Ip),
        "ip6" => Some(Proto::Ip6),
        _ => None,
    }
}

fn type_of(word: &str) -> Option<Type> {
    match word {
        "host" => Some(Type::Host),
        "net" => Some(Type::Net),
        "port" => Some(Type::Port),
        "portrange" => Some(Type::Portrange),
        _ => None,
    }
}

fn is_keyword(word: &str) -> bool {
    proto_of(word).is_some() || type_of(word).is_some() || matches!(word, "src" | "dst" | "mask")
}

/// pcap-filter keywords outside the subset, and what to say about them.
fn unsupported(word: &str) -> Option<String> {
    const PROTOCOLS: &[&str] = &[
        "udp", "icmp", "icmp6", "igmp", "igrp", "pim", "vrrp", "carp", "sctp", "arp", "rarp", "ah",
        "esp", "atalk", "aarp", "decnet", "iso", "stp", "ipx", "netbeui", "lat", "moprc", "mopdl",
        "clnp", "esis", "isis", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
    ];
    const OTHERS: &[&str] = &[
        "ether",
        "fddi",
        "tr",
        "wlan",
        "link",
        "ppp",
        "slip",
        "mpls",
        "pppoed",
        "geneve",
        "gateway",
        "proto",
        "protochain",
        "broadcast",
        "multicast",
        "less",
        "greater",
        "len",
        "inbound",
        "outbound",
        "ifindex",
        "ifname",
        "on",
        "rnr",
        "rulenum",
        "reason",
        "rset",
        "ruleset",
        "srnr",
        "subrulenum",
        "action",
        "type",
        "subtype",
        "dir",
        "addr1",
        "addr2",
        "addr3",
        "addr4",
        "ra",
        "ta",
        "llc",
        "vxlan",
        "metac",
        "bcc",
        "sc",
        "ilmic",
        "oamf4ec",
        "oamf4sc",
        "oam",
        "oamf4",
        "connectmsg",
        "metaconnect",
        "vpi",
        "vci",
        "lane",
        "sio",
        "opc",
        "dpc",
        "sls",
        "hsio",
        "hopc",
        "hdpc",
        "hsls",
        "fisu",
        "lssu",
        "msu",
        "hfisu",
        "hlssu",
        "hmsu",
        "tcpflags",
        "icmptype",
        "icmpcode",
    ];
    if matches!(word, "vlan" | "pppoes") {
        Some(format!(
            "'{word}' is not needed: sniffer's filters look through VLAN tags and PPPoE \
             session headers by themselves"
        ))
    } else if PROTOCOLS.contains(&word) {
        Some(format!(
            "'{word}' is not supported: sniffer sees only TCP, and every filter means \
             'tcp and (…)'"
        ))
    } else if OTHERS.contains(&word) {
        Some(format!(
            "'{word}' is not supported (sniffer's filters know host, net, port, portrange, \
             src, dst, tcp, ip, ip6, and, or, not and parentheses)"
        ))
    } else {
        None
    }
}

/// What an id after these qualifiers should be, for messages.
fn expected(q: &Qual<'_>) -> &'static str {
    match q.kind.map(|k| k.0) {
        Some(Type::Port) => "a port number",
        Some(Type::Portrange) => "a port range such as 8000-8080",
        Some(Type::Net) => "a network such as 10.0.0.0/8",
        Some(Type::Host) | None => "an address",
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Token<'a> {
        self.tokens.get(self.at + ahead).copied().unwrap_or(Token {
            kind: Kind::End,
            text: "",
            column: self.end_column,
        })
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.peek();
        self.at += 1;
        t
    }

    /// `operand (op operand)*`, left to right. Returns the expression and what an id
    /// after it continues.
    fn expr(&mut self, ctx: Ctx<'a>, ids_only: bool) -> Result<(Expr, Ctx<'a>), FilterError> {
        let (mut expr, mut ctx) = self.operand(ctx, ids_only)?;
        loop {
            let op = self.peek().kind;
            if !matches!(op, Kind::And | Kind::Or) {
                return Ok((expr, ctx));
            }
            self.bump();
            let (rhs, rctx) = self.operand(ctx, ids_only)?;
            expr = if op == Kind::And {
                Expr::And(vec![expr, rhs])
            } else {
                Expr::Or(vec![expr, rhs])
            };
            ctx = rctx;
        }
    }

    /// A negation, a parenthesised expression, a term, or (with a context) an id.
    /// `ids_only`: after a qualifier, where only ids may stand (`host (a or b)`).
    fn operand(&mut self, ctx: Ctx<'a>, ids_only: bool) -> Result<(Expr, Ctx<'a>), FilterError> {
        let t = self.peek();
        match t.kind {
            Kind::Not => {
                self.bump();
                let (e, ctx) = self.operand(ctx, ids_only)?;
                Ok((Expr::Not(Box::new(e)), ctx))
            }
            Kind::LParen => {
                self.bump();
                let (e, _) = self.expr(ctx, ids_only)?;
                let close = self.peek();
                match close.kind {
                    Kind::RParen => {
                        self.bump();
                        Ok((e, ctx))
                    }
                    Kind::End => Err(syntax(t, "this '(' is never closed".into())),
                    _ => Err(syntax(
                        close,
                        format!("expected 'and', 'or' or ')' before '{}'", close.text),
                    )),
                }
            }
            Kind::Word if is_keyword(t.text) => {
                if let (true, Ctx::Q(q)) = (ids_only, ctx) {
                    return Err(syntax(
                        t,
                        format!(
                            "expected {} after '{}', found '{}'",
                            expected(&q),
                            q.last.text,
                            t.text
                        ),
                    ));
                }
                self.term()
            }
            Kind::Word => {
                if let Some(message) = unsupported(t.text) {
                    return Err(FilterError::Unsupported {
                        column: t.column,
                        token: t.text.to_owned(),
                        message,
                    });
                }
                self.bump();
                let Ctx::Q(q) = ctx else {
                    return Err(syntax(
                        t,
                        format!(
                            "'{}' needs a qualifier before it: host, net, port or portrange \
                             (e.g. 'host {0}')",
                            t.text
                        ),
                    ));
                };
                Ok((self.id(&q, t)?, ctx))
            }
            Kind::End => Err(syntax(
                t,
                match (ctx, ids_only) {
                    (Ctx::Q(q), true) => {
                        format!(
                            "the filter ends early: expected {} after '{}'",
                            expected(&q),
                            q.last.text
                        )
                    }
                    _ => "the filter ends early: expected a test such as 'port 80'".into(),
                },
            )),
            Kind::RParen | Kind::And | Kind::Or | Kind::Slash => Err(syntax(
                t,
                match (ctx, ids_only) {
                    (Ctx::Q(q), true) => format!(
                        "expected {} after '{}', found '{}'",
                        expected(&q),
                        q.last.text,
                        t.text
                    ),
                    _ => format!("expected a test such as 'port 80', found '{}'", t.text),
                },
            )),
        }
    }

    /// `[proto] [dir] [type] id`, or `tcp`/`ip`/`ip6` alone.
    fn term(&mut self) -> Result<(Expr, Ctx<'a>), FilterError> {
        let first = self.peek();
        let proto = proto_of(first.text).map(|p| {
            self.bump();
            (p, first)
        });
        let mut last = first;
        let dir = self.dir().map(|(d, t)| {
            last = t;
            d
        });
        let t = self.peek();
        let kind = (t.kind == Kind::Word)
            .then(|| type_of(t.text))
            .flatten()
            .map(|k| {
                self.bump();
                last = t;
                (k, t)
            });
        if dir.is_none() && kind.is_none() {
            return match proto {
                Some((Proto::Tcp, _)) => Ok((Expr::Const(true), Ctx::None)),
                Some((Proto::Ip, _)) => Ok((Expr::Prim(Prim::Family(Family::V4)), Ctx::None)),
                Some((Proto::Ip6, _)) => Ok((Expr::Prim(Prim::Family(Family::V6)), Ctx::None)),
                // `mask` where a test should start.
                None => Err(syntax(
                    first,
                    format!(
                        "'{}' must follow a network address (net 10.0.0.0 mask 255.0.0.0)",
                        first.text
                    ),
                )),
            };
        }
        let q = Qual {
            proto,
            dir: dir.unwrap_or(Dir::Either),
            kind,
            last,
        };
        let (e, _) = self.operand(Ctx::Q(q), true)?;
        Ok((e, Ctx::Q(q)))
    }

    /// `src`, `dst`, `src or dst`, `src and dst` (either order); the last token read.
    fn dir(&mut self) -> Option<(Dir, Token<'a>)> {
        let t = self.peek();
        let first = match t.text {
            "src" if t.kind == Kind::Word => Dir::Src,
            "dst" if t.kind == Kind::Word => Dir::Dst,
            _ => return None,
        };
        self.bump();
        let (op, other) = (self.peek(), self.peek_at(1));
        let pair = matches!((first, other.text), (Dir::Src, "dst") | (Dir::Dst, "src"))
            && other.kind == Kind::Word;
        match op.kind {
            Kind::Or if pair => {
                self.at += 2;
                Some((Dir::Either, other))
            }
            Kind::And if pair => {
                self.at += 2;
                Some((Dir::Both, other))
            }
            _ => Some((first, t)),
        }
    }

    /// An id under the qualifiers `q`.
    fn id(&mut self, q: &Qual<'a>, t: Token<'a>) -> Result<Expr, FilterError> {
        match q.kind.map(|k| k.0) {
            Some(kind @ (Type::Port | Type::Portrange)) => {
                if let Some((Proto::Ip | Proto::Ip6, pt)) = q.proto {
                    return Err(invalid(
                        pt,
                        format!(
                            "'{}' cannot qualify '{}' (only 'tcp' can)",
                            pt.text,
                            q.kind.map_or("", |k| k.1.text)
                        ),
                    ));
                }
                let (lo, hi) = if kind == Type::Port {
                    let p = port(t).ok_or_else(|| {
                        syntax(
                            t,
                            format!(
                                "expected a port number after '{}', found '{}'",
                                q.last.text, t.text
                            ),
                        )
                    })??;
                    (p, p)
                } else {
                    port_range(t).ok_or_else(|| {
                        syntax(
                            t,
                            format!(
                                "expected a port range such as 8000-8080 after '{}', found '{}'",
                                q.last.text, t.text
                            ),
                        )
                    })??
                };
                if self.peek().kind == Kind::Slash {
                    return Err(syntax(
                        self.peek(),
                        format!("a port takes no '/' ('{}' …)", t.text),
                    ));
                }
                Ok(Expr::Prim(Prim::ports(q.dir, lo, hi)))
            }
            _ => self.address(q, t),
        }
    }

    /// An address, a network (`/len`, `mask M`) or a number, under host/net/default.
    fn address(&mut self, q: &Qual<'a>, t: Token<'a>) -> Result<Expr, FilterError> {
        let is_net = matches!(q.kind, Some((Type::Net, _)));
        let net = if let Some(v) = number(t.text) {
            // A plain number: `net 10` is 10.0.0.0/8 (the number promoted to the top
            // bytes), `host 10` is 0.0.0.10.
            if self.peek().kind == Kind::Slash || self.peek().text == "mask" {
                return Err(invalid(
                    t,
                    format!(
                        "'{}' is not an address: write the network in dotted form, e.g. \
                         10.0.0.0/8",
                        t.text
                    ),
                ));
            }
            let (mut addr, mut mask) = (v, u32::MAX);
            if is_net {
                while addr != 0 && addr & 0xff00_0000 == 0 {
                    addr <<= 8;
                    mask <<= 8;
                }
            }
            Net::V4 { addr, mask }
        } else if let Some((v, bits)) = dotted(t.text) {
            // Missing trailing parts make a network: `10.1` is 10.1.0.0/16.
            let (addr, mut mask) = (v << (32 - bits), u32::MAX << (32 - bits));
            if let Some(m) = self.mask(q, 32)? {
                mask = m.map_or(0, |len| u32::MAX << (32 - len));
                if addr & !mask != 0 {
                    return Err(invalid(
                        t,
                        format!("'{}' has bits set beyond its network mask", t.text),
                    ));
                }
            } else if self.peek().text == "mask" {
                let m = self.bump();
                if !is_net {
                    return Err(mask_needs_net(m));
                }
                let mt = self.bump();
                let Some((mv, mbits)) = dotted(mt.text) else {
                    return Err(syntax(
                        mt,
                        format!(
                            "expected a dotted mask such as 255.255.0.0 after 'mask', found '{}'",
                            mt.text
                        ),
                    ));
                };
                mask = mv << (32 - mbits);
                if addr & !mask != 0 {
                    return Err(invalid(
                        t,
                        format!("'{}' has bits set beyond the mask {}", t.text, mt.text),
                    ));
                }
            }
            Net::V4 { addr, mask }
        } else if t.text.contains(':') {
            let addr: Ipv6Addr = t
                .text
                .parse()
                .map_err(|_| invalid(t, format!("'{}' is not an IPv4 or IPv6 address", t.text)))?;
            let addr = u128::from(addr);
            let mut mask = u128::MAX;
            if let Some(len) = self.mask(q, 128)? {
                mask = len.map_or(0, |len| u128::MAX << (128 - len));
                if addr & !mask != 0 {
                    return Err(invalid(
                        t,
                        format!("'{}' has bits set beyond its network mask", t.text),
                    ));
                }
            } else if self.peek().text == "mask" {
                return Err(FilterError::Unsupported {
                    column: self.peek().column,
                    token: "mask".into(),
                    message: "an IPv6 network takes '/len', not 'mask'".into(),
                });
            }
            Net::V6 { addr, mask }
        } else if t.text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(invalid(t, format!("'{}' is not an IPv4 address", t.text)));
        } else {
            return Err(FilterError::Unsupported {
                column: t.column,
                token: t.text.to_owned(),
                message: format!(
                    "'{}': host and network names are not looked up; give an address",
                    t.text
                ),
            });
        };
        match (q.proto, net.family()) {
            (Some((Proto::Tcp, pt)), _) => Err(invalid(
                pt,
                format!(
                    "'tcp' cannot qualify an address: write 'tcp and {}{}'",
                    match q.kind {
                        Some((Type::Net, _)) => "net ",
                        _ => "host ",
                    },
                    t.text
                ),
            )),
            (Some((Proto::Ip6, pt)), Family::V4) => Err(invalid(
                pt,
                format!("'ip6' cannot qualify the IPv4 address '{}'", t.text),
            )),
            (Some((Proto::Ip, pt)), Family::V6) => Err(invalid(
                pt,
                format!("'ip' cannot qualify the IPv6 address '{}'", t.text),
            )),
            _ => Ok(Expr::Prim(Prim::addrs(q.dir, net))),
        }
    }

    /// `/len` after an address: `Ok(None)` if there is none, `Ok(Some(None))` for `/0`,
    /// else the length (1..=max).
    #[expect(
        clippy::option_option,
        reason = "absent, /0 and /len are three different answers"
    )]
    fn mask(&mut self, q: &Qual<'a>, max: u32) -> Result<Option<Option<u32>>, FilterError> {
        if self.peek().kind != Kind::Slash {
            return Ok(None);
        }
        let slash = self.bump();
        if !matches!(q.kind, Some((Type::Net, _))) {
            // libpcap allows `host ::1/128`, the whole address.
            let len = self.peek();
            if max == 128 && number(len.text) == Some(128) {
                self.bump();
                return Ok(Some(Some(128)));
            }
            return Err(mask_needs_net(slash));
        }
        let len = self.bump();
        match number(len.text) {
            Some(0) => Ok(Some(None)),
            Some(n) if n <= max => Ok(Some(Some(n))),
            Some(n) => Err(invalid(
                len,
                format!("a mask length is at most {max}, not {n}"),
            )),
            None => Err(syntax(
                len,
                format!("expected a mask length after '/', found '{}'", len.text),
            )),
        }
    }
}

fn mask_needs_net(t: Token<'_>) -> FilterError {
    FilterError::Invalid {
        column: t.column,
        token: t.text.to_owned(),
        message: format!(
            "'{}' (a network mask) needs 'net' before the address",
            t.text
        ),
    }
}

/// A pcap-filter number: decimal, `0x` hexadecimal, or octal with a leading 0.
fn number(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u32::from_str_radix(&s[1..], 8).ok();
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// 2 to 4 dotted decimal parts: the value and the bits given (8 per part).
fn dotted(s: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = s.split('.').collect();
    if !(2..=4).contains(&parts.len()) {
        return None;
    }
    let mut v = 0_u32;
    for p in &parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = p.parse().ok()?;
        if n > 255 {
            return None;
        }
        v = (v << 8) | n;
    }
    Some((v, 8 * parts.len() as u32))
}

/// Service names accepted for ports: the TCP entries of a common /etc/services.
const SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("imap", 143),
    ("imap2", 143),
    ("https", 443),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
    ("http-alt", 8080),
    ("webcache", 8080),
];

/// A port number or service name: `None` if the word is neither, `Some(Err)` if it is a
/// number out of range.
fn port(t: Token<'_>) -> Option<Result<u16, FilterError>> {
    port_value(t, t.text)
}

fn port_value(t: Token<'_>, s: &str) -> Option<Result<u16, FilterError>> {
    if let Some(n) = number(s) {
        return Some(
            u16::try_from(n)
                .map_err(|_| invalid(t, format!("port {n} is out of range (0 to 65535)"))),
        );
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // Digits that are not a number: an octal literal with 8 or 9, or an overflow.
        return Some(Err(invalid(t, format!("'{s}' is not a port number"))));
    }
    SERVICES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|&(_, p)| Ok(p))
}

/// `lo-hi` (numbers or service names; either order), or one port.
fn port_range(t: Token<'_>) -> Option<Result<(u16, u16), FilterError>> {
    if let Some(p) = port(t) {
        return Some(p.map(|p| (p, p)));
    }
    // Service names contain '-' too (http-alt): try each split.
    for (i, _) in t.text.match_indices('-') {
        let (a, b) = (&t.text[..i], &t.text[i + 1..]);
        if let (Some(a), Some(b)) = (port_value(t, a), port_value(t, b)) {
            return Some(a.and_then(|a| b.map(|b| (a.min(b), a.max(b)))));
        }
    }
    None
}
