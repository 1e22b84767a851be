// The part of popt that ipvsadm relies on: short options, clusters of them (-Ln), arguments
// attached (-w3, -w=3, --weight=3) or in the next word, optional arguments that never take a word
// starting with '-', "--" ending the options, and leftover words collected as arguments.

export type ArgKind = 'none' | 'required' | 'optional';

export interface OptionDef {
  long: string;
  short?: string;
  arg: ArgKind;
  /** What the caller dispatches on (several options may share one, like -L and -l). */
  tag: string;
}

export type PoptResult =
  | { kind: 'option'; def: OptionDef; arg: string | undefined }
  | { kind: 'error'; error: 'missing argument' | 'unknown option' | 'option does not take an argument'; bad: string }
  | { kind: 'end' };

export class Popt {
  private next = 0;
  /** Rest of a short-option cluster being read. */
  private cluster: string | undefined;
  private current = '';

  private onlyArgs = false;
  readonly leftovers: string[] = [];

  constructor(
    private readonly argv: readonly string[],
    private readonly table: readonly OptionDef[],
  ) {}

  /** The next option; non-option words are collected into leftovers on the way. */
  nextOption(): PoptResult {
    if (this.cluster) return this.shortOption();
    for (;;) {
      if (this.next >= this.argv.length) return { kind: 'end' };
      const word = this.argv[this.next++]!;
      this.current = word;
      if (this.onlyArgs || word === '-' || !word.startsWith('-')) {
        this.leftovers.push(word);
        continue;
      }
      if (word === '--') {
        this.onlyArgs = true;
        continue;
      }
      if (word.startsWith('--')) return this.longOption(word.slice(2));
      this.cluster = word.slice(1);
      return this.shortOption();
    }
  }

  /** The command-line word of the last option or error (poptBadOption). */
  get word(): string {
    return this.current;
  }

  /** The next word left over (poptGetArg). */
  nextArg(): string | undefined {
    return this.leftovers.shift();
  }

  private longOption(text: string): PoptResult {
    const eq = text.indexOf('=');
    const name = eq < 0 ? text : text.slice(0, eq);
    const def = this.table.find((d) => d.long === name);
    if (!def) return { kind: 'error', error: 'unknown option', bad: this.current };
    if (eq >= 0) {
      if (def.arg === 'none') return { kind: 'error', error: 'option does not take an argument', bad: this.current };
      return { kind: 'option', def, arg: text.slice(eq + 1) };
    }
    return this.withArgument(def);
  }

  private shortOption(): PoptResult {
    const text = this.cluster!;
    const def = this.table.find((d) => d.short === text[0]);
    const rest = text.slice(1);
    this.cluster = rest || undefined;
    if (!def) {
      this.cluster = undefined;
      return { kind: 'error', error: 'unknown option', bad: this.current };
    }
    if (def.arg !== 'none' && this.cluster) {
      this.cluster = undefined;
      return { kind: 'option', def, arg: rest.startsWith('=') ? rest.slice(1) : rest };
    }
    return this.withArgument(def);
  }

  private withArgument(def: OptionDef): PoptResult {
    if (def.arg === 'none') return { kind: 'option', def, arg: undefined };
    if (this.next >= this.argv.length) {
      if (def.arg === 'optional') return { kind: 'option', def, arg: undefined };
      return { kind: 'error', error: 'missing argument', bad: this.current };
    }
    const word = this.argv[this.next]!;
    if (def.arg === 'optional' && word.startsWith('-')) return { kind: 'option', def, arg: undefined };
    this.next++;
    return { kind: 'option', def, arg: word };
  }
}
