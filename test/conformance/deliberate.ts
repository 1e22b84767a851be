// The only differences from kernel IPVS the conformance suite accepts, each with its reason. A
// rule applies to a command whose arguments (joined by spaces) match `when`, and to the commands
// after it in the same case (what follows from it). The README's table of what differs on purpose
// is this list.
export interface Deliberate {
  when: RegExp;
  reason: string;
}

export const DELIBERATE: Deliberate[] = [
  {
    when: /(-s|--scheduler) twos\b/,
    reason: 'xvs has the twos scheduler of Linux 6.11 and later; the 6.1 kernel of the guest predates it',
  },
  {
    when: /--nosort/,
    reason: "with --nosort the kernel lists services in its hash table's order, which mixes in a kernel memory address (the namespace's): no fixed order to follow",
  },
  {
    when: /--set( \S+){0,2} \d{7,}/,
    reason: 'a timeout may be at most INT_MAX/HZ seconds: xvs takes HZ = 1000 (2147483 s); the guest kernel has HZ = 100',
  },
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
