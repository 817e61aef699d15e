#!/usr/bin/env python3
"""Verify a consentgate audit log without consentgate: Python 3.8+ standard library only.

    verify_audit.py DIR [--checkpoint FILE] [--public-key PEM]

Checks what docs/AUDIT-FORMAT.md specifies: every line is the RFC 8785 canonical JSON of its
record (the stored bytes), hashes, prev links, seq continuity, segment names, every checkpoint
in DIR/checkpoints.jsonl against the record it names, and the checkpoint anchoring a chain
shortened by retention. With --public-key (SPKI PEM, Ed25519 or P-256) every checkpoint's
signature is checked too; a checkpoint the result relies on (the anchor, or --checkpoint)
whose signature was not checked makes the result not ok. Prints one JSON line; exit 0 if ok,
1 if not, 2 on bad usage.
"""
import base64, hashlib, json, os, re, sys

GENESIS = "0" * 64


def canon(v):
    """RFC 8785 for JSON without fractions (records and checkpoints hold none)."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int):
        if abs(v) > 2 ** 53:
            raise ValueError("integer beyond 2^53")
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canon(v[k]) for k in keys) + "}"
    raise ValueError("numbers with fractions are not in the format")


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def parse(text):
    return json.loads(text, object_pairs_hook=no_duplicates, parse_float=lambda s: 1 / 0,
                      parse_constant=lambda s: 1 / 0)


# Ed25519 (RFC 8032 §5.1.7) and ECDSA P-256 verification, textbook arithmetic.
EP = 2 ** 255 - 19
EL = 2 ** 252 + 27742317777372353535851937790883648493
ED = -121665 * pow(121666, -1, EP) % EP


def ed_x(y, sign):
    x2 = (y * y - 1) * pow(ED * y * y + 1, -1, EP) % EP
    x = pow(x2, (EP + 3) // 8, EP)
    if (x * x - x2) % EP:
        x = x * pow(2, (EP - 1) // 4, EP) % EP
    if (x * x - x2) % EP or (x == 0 and sign):
        return None
    return EP - x if (x & 1) != sign else x


def ed_add(P, Q):
    a, b = (P[1] - P[0]) * (Q[1] - Q[0]) % EP, (P[1] + P[0]) * (Q[1] + Q[0]) % EP
    c, d = 2 * P[3] * Q[3] * ED % EP, 2 * P[2] * Q[2] % EP
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % EP, g * h % EP, f * g % EP, e * h % EP)


def ed_mul(s, P):
    Q = (0, 1, 1, 0)
    while s:
        Q, P, s = (ed_add(Q, P) if s & 1 else Q), ed_add(P, P), s >> 1
    return Q


def ed_point(b):
    y = int.from_bytes(b, "little")
    if (y & ((1 << 255) - 1)) >= EP:
        return None
    x = ed_x(y & ((1 << 255) - 1), y >> 255)
    return None if x is None else (x, y & ((1 << 255) - 1), 1, x * (y & ((1 << 255) - 1)) % EP)


def ed25519_verify(pub, msg, sig):
    A, R = ed_point(pub), ed_point(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= EL or len(sig) != 64:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % EL
    gy = 4 * pow(5, -1, EP) % EP
    G = (ed_x(gy, 0), gy, 1, ed_x(gy, 0) * gy % EP)
    P, Q = ed_mul(s, G), ed_add(R, ed_mul(h, A))
    return (P[0] * Q[2] - Q[0] * P[2]) % EP == 0 and (P[1] * Q[2] - Q[1] * P[2]) % EP == 0


NP = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
NN = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
NB = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
NG = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
      0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def ec_add(P, Q):
    if P is None or Q is None:
        return P or Q
    if P[0] == Q[0] and (P[1] + Q[1]) % NP == 0:
        return None
    if P == Q:
        m = (3 * P[0] * P[0] - 3) * pow(2 * P[1], -1, NP) % NP
    else:
        m = (Q[1] - P[1]) * pow(Q[0] - P[0], -1, NP) % NP
    x = (m * m - P[0] - Q[0]) % NP
    return (x, (m * (P[0] - x) - P[1]) % NP)


def ec_mul(k, P):
    R = None
    while k:
        R, P, k = (ec_add(R, P) if k & 1 else R), ec_add(P, P), k >> 1
    return R


def es256_verify(pub, msg, sig):
    x, y = int.from_bytes(pub[1:33], "big"), int.from_bytes(pub[33:], "big")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if len(sig) != 64 or pub[0] != 4 or (y * y - x ** 3 + 3 * x - NB) % NP or not (0 < r < NN and 0 < s < NN):
        return False
    e, w = int.from_bytes(hashlib.sha256(msg).digest(), "big"), pow(s, -1, NN)
    X = ec_add(ec_mul(e * w % NN, NG), ec_mul(r * w % NN, (x, y)))
    return X is not None and X[0] % NN == r


SPKI = {"EdDSA": (bytes.fromhex("302a300506032b6570032100"), 32, ed25519_verify),
        "ES256": (bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"), 65, es256_verify)}


def signature_ok(cp, spki):
    prefix, n, check = SPKI.get(cp.get("alg"), (None, 0, None))
    if prefix is None or spki[:-n] != prefix or len(spki) != len(prefix) + n:
        return False
    raw = spki[-n:]
    if hashlib.sha256(raw).hexdigest()[:16] != cp.get("key_id"):
        return False
    sig = base64.urlsafe_b64decode(cp["sig"] + "=" * (-len(cp["sig"]) % 4))
    msg = canon({"hash": cp["hash"], "seq": cp["seq"], "ts": cp["ts"]}).encode()
    return check(raw, msg, sig)


def verify(folder, given, spki):
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"\d{20}\.jsonl", n))
    cps = []
    cp_path = os.path.join(folder, "checkpoints.jsonl")
    if os.path.exists(cp_path):
        with open(cp_path, "rb") as f:
            lines = f.read().split(b"\n")
        cps = [parse(l) for i, l in enumerate(lines) if l.strip() and not (i == len(lines) - 1 and l)]
    first = int(names[0][:20]) if names else 1
    out = {"ok": False, "records": 0, "first_seq": first, "checkpoints_checked": 0}
    prev, relied = GENESIS, []
    if first > 1:
        anchor = next((c for c in cps if c["seq"] == first - 1), None)
        if anchor is None:
            return dict(out, reason=f"no checkpoint anchors the oldest segment (seq {first})")
        prev, out["from_checkpoint"] = anchor["hash"], anchor["seq"]
        relied.append(anchor)
    by_seq = {c["seq"]: c["hash"] for c in cps}
    if given:
        by_seq.setdefault(given["seq"], given["hash"])
        relied.append(given)
    seq = first
    for i, name in enumerate(names):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        tail = lines.pop()
        if tail and i + 1 < len(names):
            return dict(out, first_bad_seq=seq, reason=f"{name} ends with a torn line")
        for j, line in enumerate(lines):
            bad = lambda why: dict(out, first_bad_seq=seq, reason=why)
            try:
                rec = parse(line.decode("utf-8"))
                body = {k: v for k, v in rec.items() if k != "hash"}
                if canon(rec).encode() != line:
                    return bad("stored bytes are not the record's canonical JSON")
            except (ValueError, ZeroDivisionError, UnicodeDecodeError, AttributeError):
                return bad("line is not a record")
            if rec.get("seq") != seq:
                return bad(f"expected seq {seq}: a record was deleted, inserted or moved")
            if j == 0 and int(name[:20]) != seq:
                return bad(f"segment {name} does not start with record {int(name[:20])}")
            if hashlib.sha256((prev + canon(body)).encode()).hexdigest() != rec.get("hash"):
                return bad("record does not match its hash")
            if rec.get("prev") != prev:
                return bad("prev does not match the previous record's hash")
            if seq in by_seq:
                if by_seq[seq] != rec["hash"]:
                    return bad("record differs from a checkpoint of it: history was rewritten")
                out["checkpoints_checked"] += 1
            prev, seq, out["records"] = rec["hash"], seq + 1, out["records"] + 1
    if given and not first <= given["seq"] < seq:
        return dict(out, first_bad_seq=seq, reason=f"checkpoint {given['seq']} is not in the retained chain")
    if spki is not None:
        bad_sig = [c["seq"] for c in cps + ([given] if given else []) if not signature_ok(c, spki)]
        if bad_sig:
            return dict(out, signatures="invalid", reason=f"checkpoint {bad_sig[0]} has an invalid signature")
        return dict(out, ok=True, signatures="verified")
    if relied:
        return dict(out, signatures="unverified",
                    reason=f"checkpoint {relied[0]['seq']} was not checked against a trusted public key")
    return dict(out, ok=True, signatures="unverified")


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    args, opts = [], {}
    it = iter(argv)
    for a in it:
        if a in ("--checkpoint", "--public-key"):
            opts[a] = next(it, None)
        else:
            args.append(a)
    if len(args) != 1 or None in opts.values():
        print(__doc__, file=sys.stderr)
        return 2
    given = spki = None
    if "--checkpoint" in opts:
        with open(opts["--checkpoint"], encoding="utf-8") as f:
            text = f.read().strip()
        try:
            given = parse(text)
        except ValueError:
            given = parse(text.splitlines()[-1])
    if "--public-key" in opts:
        with open(opts["--public-key"], encoding="ascii") as f:
            pem = f.read()
        b64 = pem.split("-----BEGIN PUBLIC KEY-----")[1].split("-----END PUBLIC KEY-----")[0]
        spki = base64.b64decode("".join(b64.split()))
    try:
        report = verify(args[0], given, spki)
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:
        report = {"ok": False, "reason": f"cannot read the log: {e.__class__.__name__}"}
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
