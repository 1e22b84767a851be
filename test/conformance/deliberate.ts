// The only differences from kernel IPVS the conformance suite accepts, each with its reason. A
// rule applies to a command whose arguments (joined by spaces) match `when`; the README's table of
// what differs on purpose is this list.
export interface Deliberate {
  when: RegExp;
  reason: string;
}

export const DELIBERATE: Deliberate[] = [
  { when: /^(-v|--version)$/, reason: 'the version line names xvs and its version (and the ipvsadm and IPVS versions it follows)' },
  { when: /(^| )(-h|--help)( |$)/, reason: "xvsadm's help adds its own commands (--attach, --detach, --teardown, mark rules, --pin-path)" },
  {
    when: /--start-daemon|--stop-daemon/,
    reason: 'connection synchronisation (the sync daemon) is not implemented in xvs: xvsadm refuses, saying so, where ipvsadm starts or stops it',
  },
  {
    when: /--rate/,
    reason: "xvs's rates are estimated by xvsd: without it xvsadm refuses --rate (saying how to start it) rather than print zeros",
  },
];
