// The live-frames generator in a process of its own, so that the control plane can change the
// balancer while traffic runs at full rate on another CPU. Started by bench/control.ts inside the
// client namespace with one JSON argument (GeneratorJob); prints "ready" once loaded, then, when
// done, one JSON line: { sent, seconds }.
import { Sender, type TrafficSpec } from './programs.js';

export interface GeneratorJob {
  traffic: Omit<TrafficSpec, 'template'> & { template: { frame: string; clientIsDst: boolean; ipSum: number; l4Sum: number } };
  ifindex: number;
  netns: string;
  seconds: number;
  chunk: number;
}

/** The job as a command-line argument (the frame in base64). */
export function encodeJob(traffic: TrafficSpec, rest: Omit<GeneratorJob, 'traffic'>): string {
  const job: GeneratorJob = {
    ...rest,
    traffic: { ...traffic, template: { ...traffic.template, frame: traffic.template.frame.toString('base64') } },
  };
  return JSON.stringify(job);
}

function main(): void {
  const job = JSON.parse(process.argv[2] ?? '') as GeneratorJob;
  const traffic: TrafficSpec = { ...job.traffic, template: { ...job.traffic.template, frame: Buffer.from(job.traffic.template.frame, 'base64') } };
  const sender = new Sender(traffic, job.ifindex, job.netns);
  try {
    process.stdout.write('ready\n');
    const result = sender.sendFor(job.seconds, job.chunk);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    sender.close();
  }
}

if (process.argv[1]?.endsWith('gen-child.js')) main();
