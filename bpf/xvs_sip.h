/* SPDX-License-Identifier: GPL-2.0 */
/* The sip persistence engine (--pe sip, ip_vs_pe_sip.c): on a persistent service, a new UDP
 * datagram's template is ⟨the usual template key, the SIP Call-ID⟩, so every datagram of one call
 * from one client (address & netmask, as ip_vs_sip_ct_match compares it) goes to the same real
 * server while the template lives, and two calls of one client may go to different ones. With -o
 * every datagram is placed by its Call-ID; without, a datagram of a live connection follows its
 * connection, as in the kernel.
 *
 * The Call-ID is found as the kernel's get_callid / ct_sip_get_header find it, quirks included
 * (checked against Linux 6.1 in test/sip.test.ts): a header name at the start of a line (CR, LF or
 * CRLF; a line starting with SP/HT is a continuation), "Call-ID" or the compact "i" not followed by
 * a letter, case-insensitive; SP, HT and one continuation around the colon; the value is a word
 * (kernel iswordc, Latin-1 letters included), optionally "@" and a second word; a value of no word
 * makes the search go on after it; the first name not followed by a colon ends the search. The
 * Call-ID must be at most 255 bytes and be followed by CR or LF. A datagram without one is dropped
 * (XVS_R_DROP_SIP_NO_CALLID; the kernel's fill_param fails and ip_vs_sched_persist asks for
 * NF_DROP), so is a TCP segment of a persistent sip service.
 *
 * Bounds: the search reads at most XVS_SIP_SCAN_MAX bytes of payload (copied to a per-CPU buffer)
 * in at most XVS_SIP_STEPS steps of one bpf_loop. A decision that would need a byte beyond the
 * window (a Call-ID deeper than 2048 bytes, or in a later fragment of a first fragment) drops the
 * datagram as XVS_R_DROP_SIP_UNPARSED instead of guessing; so does a search that ran out of steps
 * (rescans after wordless values revisit bytes; 3 steps per byte is more than any payload needs).
 * Templates keep the Call-ID's bytes whole (a 296-byte key) rather than a hash: a hash would be
 * smaller and faster to compare, but two calls could then share a template. */
#ifndef XVS_SIP_H
#define XVS_SIP_H

#include "xvs_conn.h"

#define XVS_SIP_CALLID_LIMIT 255 /* IP_VS_PEDATA_MAXLEN */
#define XVS_SIP_STEPS (3 * XVS_SIP_SCAN_MAX + 64)
#define XVS_SIP_IDX(i) ((i) & (XVS_SIP_SCAN_MAX - 1))
#define XVS_SIP_PARSE (-4) /* xvs_decide's verdict: search the Call-ID (needs the frame), decide again */
#define XVS_SIP_DROP (-5)  /* sip_pick: drop the datagram (counted) */
#define XVS_SIP_NEW (-6)   /* sip_pick: the call has no template yet: schedule, then sip_template_new */

/* Not preallocated: the keys are large and most balancers have no sip service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TEMPLATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_sip_key);
	__type(value, struct xvs_template);
} sip_templates SEC(".maps");

/* Template id → the sweep that found a live connection it controls (the key of a sip template is
 * too large to keep in every connection). Written by the sweep's walk of the connections, read by
 * its walk of sip_templates, emptied of older stamps at its end: it holds one sweep's stamps. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TEMPLATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u64);
} sip_refs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_sip_scratch);
} sip_scratch SEC(".maps");

enum xvs_sip_result {
	XVS_SIP_FOUND = 0,
	XVS_SIP_NONE = 1,     /* no usable Call-ID */
	XVS_SIP_UNPARSED = 2, /* undecided within the window or the step budget */
};

/* The states of the search; each mirrors a loop of ct_sip_get_header or its helpers. */
enum sip_state {
	SIP_SEEK,	/* looking for a line terminator */
	SIP_NAME,	/* at a line's start: Call-ID or i? */
	SIP_WS,		/* sip_skip_whitespace */
	SIP_CONT,	/* sip_follow_continuation's leading whitespace */
	SIP_WORD,	/* callid_len: the word before '@' */
	SIP_DOMAIN,	/* callid_len: the word after '@' */
	SIP_END,
};

struct sip_search {
	__u8 *buf;
	__u32 len;	/* bytes in buf */
	__u32 datalen;	/* the payload's length; more than len when the window cut it */
	__u32 pos;
	__u32 dataoff;	/* get_callid's dataoff: where a search after a wordless value starts */
	__u32 matchoff;
	__u32 word;
	__u32 domain;
	__u32 state;
	__u32 after_colon;
	__s32 result;
	__u32 matchlen;
	__u32 zero;	/* 0, but not known to the verifier: counters start from it (see sip_search) */
};

static __always_inline __u8 sip_at(const struct sip_search *s, __u32 i)
{
	return s->buf[XVS_SIP_IDX(i)];
}

/* The window ends here: the kernel would have decided "not found" at the payload's end; before
 * it, the bytes that would decide are not in the window. */
static __always_inline void sip_limit(struct sip_search *s)
{
	s->result = s->len < s->datalen ? XVS_SIP_UNPARSED : XVS_SIP_NONE;
	s->state = SIP_END;
}

static __always_inline void sip_none(struct sip_search *s)
{
	s->result = XVS_SIP_NONE;
	s->state = SIP_END;
}

static __always_inline int sip_eol(__u8 c)
{
	return c == '\r' || c == '\n';
}

static __always_inline int sip_blank(__u8 c)
{
	return c == ' ' || c == '\t';
}

/* The kernel's isalpha(): ASCII and the Latin-1 letters of lib/ctype.c. */
static __always_inline int sip_alpha(__u8 c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c >= 0xc0 && c != 0xd7 && c != 0xf7;
}

/* nf_conntrack_sip's iswordc(). */
static __always_inline int sip_wordc(__u8 c)
{
	if (sip_alpha(c) || (c >= '0' && c <= '9'))
		return 1;
	if ((c >= '(' && c <= '+') || (c >= '-' && c <= '/') || (c >= '[' && c <= ']'))
		return 1;
	return c == '!' || c == '"' || c == '%' || c == ':' || c == '<' || c == '>' || c == '?' ||
	       c == '_' || c == '`' || c == '{' || c == '}' || c == '~' || c == '\'';
}

static __always_inline __u8 sip_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* After a CR or LF at pos: past it and the LF of a CRLF. 0 when that reaches the limit. */
static __always_inline int sip_past_eol(struct sip_search *s)
{
	s->pos++;
	if (s->pos >= s->len)
		return 0;
	if (sip_at(s, s->pos - 1) == '\r' && sip_at(s, s->pos) == '\n') {
		s->pos++;
		if (s->pos >= s->len)
			return 0;
	}
	return 1;
}

static __always_inline void sip_seek(struct sip_search *s)
{
	if (s->pos >= s->len)
		return sip_limit(s);
	if (!sip_eol(sip_at(s, s->pos))) {
		s->pos++;
		return;
	}
	if (!sip_past_eol(s))
		return sip_limit(s);
	if (sip_blank(sip_at(s, s->pos)))
		s->pos++;
	else
		s->state = SIP_NAME;
}

static __always_inline void sip_name(struct sip_search *s)
{
	static const char full[] = "call-id";
	__u32 left = s->len - s->pos;
	int match = left >= 7;

#pragma unroll
	for (int i = 0; i < 7; i++)
		match = match && sip_lower(sip_at(s, s->pos + i)) == full[i];
	if (match) {
		s->pos += 7;
	} else if (left >= 2 && sip_lower(sip_at(s, s->pos)) == 'i' && !sip_alpha(sip_at(s, s->pos + 1))) {
		s->pos += 1;
	} else {
		/* A name cut by the window's end might have matched. */
		if (left < 7 && s->len < s->datalen)
			return sip_limit(s);
		s->pos++;
		s->state = SIP_SEEK;
		return;
	}
	s->after_colon = 0;
	s->state = SIP_WS;
}

/* sip_skip_whitespace is done at pos: the colon, or the value. */
static __always_inline void sip_ws_done(struct sip_search *s)
{
	if (s->after_colon) {
		s->matchoff = s->pos;
		s->word = s->zero;
		s->state = SIP_WORD;
		return;
	}
	if (s->pos >= s->len)
		return sip_limit(s);
	if (sip_at(s, s->pos) != ':')
		return sip_none(s);
	s->pos++;
	if (s->pos >= s->len)
		return sip_limit(s);
	s->after_colon = 1;
	s->state = SIP_WS;
}

static __always_inline void sip_ws(struct sip_search *s)
{
	if (s->pos >= s->len)
		return sip_ws_done(s);
	__u8 c = sip_at(s, s->pos);
	if (sip_blank(c)) {
		s->pos++;
		return;
	}
	if (!sip_eol(c))
		return sip_ws_done(s);
	/* sip_follow_continuation: NULL (no continuation) ends the search. */
	if (!sip_past_eol(s))
		return sip_limit(s);
	if (!sip_blank(sip_at(s, s->pos)))
		return sip_none(s);
	s->state = SIP_CONT;
}

static __always_inline void sip_cont(struct sip_search *s)
{
	if (s->pos < s->len && sip_blank(sip_at(s, s->pos)))
		s->pos++;
	else
		sip_ws_done(s);
}

/* ct_sip_get_header returned -1 (a value without word): get_callid searches again from
 * dataoff + matchoff, both counted from the payload's start as the kernel adds them. */
static __always_inline void sip_again(struct sip_search *s)
{
	s->dataoff += s->matchoff;
	s->pos = s->dataoff;
	s->state = SIP_SEEK;
}

static __always_inline void sip_found(struct sip_search *s, __u32 matchlen)
{
	__u32 end = s->matchoff + matchlen;

	s->matchlen = matchlen;
	s->state = SIP_END;
	if (matchlen > XVS_SIP_CALLID_LIMIT)
		return sip_none(s);
	if (end >= s->len)
		return end < s->datalen ? sip_limit(s) : sip_none(s);
	s->result = sip_eol(sip_at(s, end)) ? XVS_SIP_FOUND : XVS_SIP_NONE;
}

static __always_inline void sip_word(struct sip_search *s)
{
	__u32 at = s->matchoff + s->word;

	if (at < s->len && sip_wordc(sip_at(s, at))) {
		s->word++;
		return;
	}
	if (at >= s->len && s->len < s->datalen)
		return sip_limit(s);
	if (!s->word)
		return sip_again(s);
	if (at >= s->len || sip_at(s, at) != '@')
		return sip_found(s, s->word);
	s->domain = s->zero;
	s->state = SIP_DOMAIN;
}

static __always_inline void sip_domain(struct sip_search *s)
{
	__u32 at = s->matchoff + s->word + 1 + s->domain;

	if (at < s->len && sip_wordc(sip_at(s, at))) {
		s->domain++;
		return;
	}
	if (at >= s->len && s->len < s->datalen)
		return sip_limit(s);
	if (!s->domain)
		return sip_again(s);
	sip_found(s, s->word + 1 + s->domain);
}

static long sip_step(__u64 i, void *ctx)
{
	struct sip_search *s = ctx;

	switch (s->state) {
	case SIP_SEEK:
		sip_seek(s);
		break;
	case SIP_NAME:
		sip_name(s);
		break;
	case SIP_WS:
		sip_ws(s);
		break;
	case SIP_CONT:
		sip_cont(s);
		break;
	case SIP_WORD:
		sip_word(s);
		break;
	case SIP_DOMAIN:
		sip_domain(s);
		break;
	default:
		return 1;
	}
	return s->state == SIP_END;
}

static __always_inline __u32 opaque(struct xvs_sip_scratch *sc, __u32 v)
{
	sc->opaque = v;
	return *(volatile __u32 *)&sc->opaque;
}

/* Searches the Call-ID of a UDP datagram into sip_scratch (result, key.callid, key.len). */
static __noinline int sip_search(struct xdp_md *ctx, const struct xvs_pkt *p)
{
	__u32 zero = 0;
	struct xvs_sip_scratch *sc = bpf_map_lookup_elem(&sip_scratch, &zero);

	if (!sc)
		return 0;
	sc->result = XVS_SIP_NONE;
	__builtin_memset(&sc->key, 0, sizeof(sc->key));
	if (p->key.proto != IPPROTO_UDP || p->l4_off <= p->l3_off)
		return 0;
	__u32 hdrs = p->l4_off - p->l3_off + 8; /* the kernel's dataoff: IP headers and UDP's */
	if (hdrs >= p->ip_len)
		return 0;
	struct sip_search s = {
		.buf = sc->buf,
		.datalen = p->ip_len - hdrs,
		.result = XVS_SIP_UNPARSED,
	};
	__u32 len = s.datalen < XVS_SIP_SCAN_MAX ? s.datalen : XVS_SIP_SCAN_MAX;
	if (p->frag == XVS_FRAG_FIRST) {
		/* Only this fragment's bytes are here; the rest of the datagram is not. */
		__u32 here = bpf_xdp_get_buff_len(ctx) - p->l4_off - 8;
		if (here < len)
			len = here;
		s.datalen = len + 1;
	}
	if (len < 1 || len > XVS_SIP_SCAN_MAX)
		return 0;
	if (bpf_xdp_load_bytes(ctx, p->l4_off + 8, sc->buf, len))
		return 0;
	/* The verifier takes bpf_loop's steps as converged only when the search's counters are no
	 * exact constants: they start from a zero and a length it does not know. */
	s.len = opaque(sc, len);
	s.zero = opaque(sc, 0);
	s.pos = s.zero;
	s.dataoff = s.zero;
	bpf_loop(XVS_SIP_STEPS, sip_step, &s, 0);
	sc->result = s.result;
	if (s.result != XVS_SIP_FOUND)
		return 0;
	__u32 n = opaque(sc, s.matchlen);
	if (n < 1 || n > XVS_SIP_CALLID_LIMIT ||
	    bpf_xdp_load_bytes(ctx, p->l4_off + 8 + s.matchoff, sc->key.callid, n)) {
		sc->result = XVS_SIP_NONE;
		return 0;
	}
	sc->key.len = n;
	return 0;
}

/* The packet's key in sip_templates, once xvs_xdp has searched its Call-ID; NULL otherwise. */
static __always_inline struct xvs_sip_key *sip_key(const struct xvs_pkt *p)
{
	__u32 zero = 0;
	struct xvs_sip_scratch *sc = bpf_map_lookup_elem(&sip_scratch, &zero);

	return sc && p->sip_parsed && sc->result == XVS_SIP_FOUND ? &sc->key : NULL;
}

/* A new datagram of a persistent sip service: the real server of its call's template,
 * XVS_SIP_NEW when the call has none, XVS_SIP_PARSE when the Call-ID is still to be searched,
 * XVS_SIP_DROP when the datagram has none, -1 on failure. */
static __noinline __s64 sip_pick(struct xvs_pkt *p, const struct xvs_service *svc, __u64 now)
{
	__u32 zero = 0;
	struct xvs_sip_scratch *sc = bpf_map_lookup_elem(&sip_scratch, &zero);

	if (!sc)
		return -1;
	if (!p->sip_parsed)
		return XVS_SIP_PARSE;
	if (sc->result != XVS_SIP_FOUND) {
		count_reason(sc->result == XVS_SIP_UNPARSED ? XVS_R_DROP_SIP_UNPARSED
							    : XVS_R_DROP_SIP_NO_CALLID);
		return XVS_SIP_DROP;
	}
	struct xvs_config *cfg = bpf_map_lookup_elem(&config, &zero);

	tpl_key_of(&sc->key.tpl, p, svc);
	struct xvs_template *t = template_use(&sip_templates, &sc->key, now, cfg ? cfg->flags : 0);
	if (!t)
		return XVS_SIP_NEW; /* not `t ? t->dest : XVS_SIP_NEW`: that is unsigned */
	return t->dest;
}

/* The call without template was scheduled to `di`: its template sends the call's next datagrams
 * there too. 0 when it could not be stored. */
static __noinline int sip_template_new(const struct xvs_service *svc, __u32 di, __u64 now)
{
	__u32 zero = 0;
	struct xvs_sip_scratch *sc = bpf_map_lookup_elem(&sip_scratch, &zero);
	struct xvs_dest *d = bpf_map_lookup_elem(&dests, &di);

	if (!sc || !d)
		return 0;
	return template_new(&sip_templates, &sc->key, svc, di, d, now) != NULL;
}

/* The template controlling a new connection of a sip service, or NULL. */
static __always_inline struct xvs_template *sip_template(const struct xvs_pkt *p)
{
	struct xvs_sip_key *k = sip_key(p);

	return k ? bpf_map_lookup_elem(&sip_templates, k) : NULL;
}

/* The sweeper found a live connection controlled by the sip template `id`. */
static __always_inline void sip_stamp(__u64 id, __u64 now)
{
	bpf_map_update_elem(&sip_refs, &id, &now, BPF_ANY);
}

/* The end of a sweep: stamps of earlier sweeps go. */
static long sip_unstamp(void *map, const __u64 *id, __u64 *stamp, void *ctx)
{
	__u64 *now = ctx;

	if (*stamp != *now)
		bpf_map_delete_elem(&sip_refs, id);
	return 0;
}

#endif
