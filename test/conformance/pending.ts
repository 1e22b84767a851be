// Features other engineers are building now: a case tagged with one of them (needs() in cases.ts)
// is expected to DIFFER from the kernel until the feature lands; then its line here is removed and
// the case must match like every other.
export const PENDING: Record<string, string> = {
  tunnels: 'GUE and GRE tunnels, --tun-port and the checksum options (stored as IPIP today)',
  'pe-sip': '--pe sip (SIP persistence by Call-ID) is refused',
  sctp: '--sctp-service is refused',
  'big-weight': 'weights above 65535 are refused',
  trash: '-C/-D end connections at once; the kernel keeps them until they expire (and the destination trash)',
  assured: 'persistence templates are listed as NONE (TCP) or UDP, never ASSURED',
  'dr-replies': 'DR/TUN replies through the balancer are not seen (no OutPkts, TCP states stop at FIN_WAIT)',
};
