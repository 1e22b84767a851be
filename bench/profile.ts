// How much each benchmark does: `--quick` for development, `--full` for the published run, and
// `smoke` (tiny counts, for the test suite: it proves the harness works, not how fast anything is).

export type ProfileName = 'smoke' | 'quick' | 'full';

export interface Profile {
  name: ProfileName;
  perPacket: {
    /** Packets per BPF_PROG_TEST_RUN call (the kernel's repeat). */
    repeat: number;
    /** Calls per case; the median is reported. */
    trials: number;
    /** Distinct established flows the established-path cases cycle through. */
    flows: number;
    /** Real servers behind the service in the new-connection cases. */
    realCounts: number[];
  };
  throughput: {
    /** Seconds of traffic per trial. */
    seconds: number;
    trials: number;
    /** Distinct flows to the virtual service. */
    flows: number;
    reals: number;
    /** Frames per BPF_PROG_TEST_RUN call of the generator. */
    chunk: number;
  };
  connTable: {
    /** Live connections to measure the established path with. */
    sizes: number[];
    repeat: number;
    trials: number;
    /** Table size of the full-table experiment. */
    fullSize: number;
  };
  control: {
    services: number;
    realsPerService: number;
    /** Distinct real server addresses the services draw their real servers from. */
    realPool: number;
    /** Seconds of traffic during which one real's weight keeps changing. */
    weightSeconds: number;
    weightEveryMs: number;
  };
}

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: 'smoke',
    perPacket: { repeat: 2000, trials: 1, flows: 256, realCounts: [10] },
    throughput: { seconds: 0.2, trials: 1, flows: 256, reals: 2, chunk: 16384 },
    connTable: { sizes: [1024], repeat: 2000, trials: 1, fullSize: 1024 },
    control: { services: 10, realsPerService: 10, realPool: 20, weightSeconds: 0.5, weightEveryMs: 50 },
  },
  quick: {
    name: 'quick',
    perPacket: { repeat: 200_000, trials: 3, flows: 65_536, realCounts: [10, 100, 1000] },
    throughput: { seconds: 1, trials: 1, flows: 65_536, reals: 4, chunk: 262_144 },
    connTable: { sizes: [1000, 100_000], repeat: 200_000, trials: 3, fullSize: 100_000 },
    control: { services: 1000, realsPerService: 10, realPool: 1000, weightSeconds: 1, weightEveryMs: 50 },
  },
  full: {
    name: 'full',
    perPacket: { repeat: 2_000_000, trials: 5, flows: 65_536, realCounts: [10, 100, 1000] },
    throughput: { seconds: 5, trials: 3, flows: 65_536, reals: 4, chunk: 1_048_576 },
    connTable: { sizes: [1000, 100_000, 1_000_000, 10_000_000], repeat: 2_000_000, trials: 5, fullSize: 1_000_000 },
    control: { services: 10_000, realsPerService: 10, realPool: 1000, weightSeconds: 5, weightEveryMs: 50 },
  },
};
