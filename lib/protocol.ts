// The transport protocols of virtual services, by name and by IP protocol number.

export type Protocol = 'tcp' | 'udp' | 'sctp';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

export const PROTO_NUMBER: Record<Protocol, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };

/** The protocol of an IP protocol number, or undefined (0 is IPVS's IPPROTO_IP of fwmark templates). */
export function protocolOf(proto: number): Protocol | undefined {
  return (Object.keys(PROTO_NUMBER) as Protocol[]).find((p) => PROTO_NUMBER[p] === proto);
}
