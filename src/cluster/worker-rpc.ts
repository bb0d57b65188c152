/**
 * Questions the cluster primary asks its workers over IPC, and their answers: a question carries an id, and the
 * worker answers with the same id. A question resolves with its answer, or with none (undefined) when the worker
 * exits, its channel is closed or the timeout passes: a worker that is gone or stuck never holds up /metrics,
 * /status or a reload, and never rejects one.
 */
import type { Worker } from 'node:cluster';
import type { Logger } from '../log.js';
import { send, type ToPrimary, type ToWorker } from './messages.js';

/** The messages a worker sends in answer to a question. */
export type Answer = Extract<ToPrimary, { readonly id: number }>;

export function isAnswer(m: ToPrimary): m is Answer {
  return 'id' in m;
}

interface Pending {
  readonly worker: Worker;
  readonly resolve: (answer: Answer | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

export class WorkerRpc {
  readonly #log: Logger;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Ask one worker; `question` builds the message around the id its answer will carry. */
  ask(worker: Worker, question: (id: number) => ToWorker, timeoutMs: number): Promise<Answer | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      // A question still open must not keep a stopping primary alive.
      timer.unref();
      this.#pending.set(id, { worker, resolve, timer });
      void send(worker, question(id)).then((sent) => {
        if (sent || !this.#pending.has(id)) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  }

  /** Ask every worker in `workers`; resolves with the answers of type `type` that came within the timeout. */
  async askAll<T extends Answer['type']>(workers: readonly Worker[], question: (id: number) => ToWorker, type: T, timeoutMs: number): Promise<Extract<Answer, { type: T }>[]> {
    const answers = await Promise.all(workers.map((worker) => this.ask(worker, question, timeoutMs)));
    const got = answers.filter((a): a is Extract<Answer, { type: T }> => a?.type === type);
    if (got.length < workers.length) this.#log.warn({ asked: workers.length, answered: got.length, query: type }, 'a worker did not answer in time');
    return got;
  }

  /** An answer came in; one to a question that timed out, or from another worker than was asked, is dropped. */
  answered(worker: Worker, answer: Answer): void {
    const pending = this.#pending.get(answer.id);
    if (pending === undefined || pending.worker !== worker) return;
    this.#pending.delete(answer.id);
    clearTimeout(pending.timer);
    pending.resolve(answer);
  }

  /** `worker` is gone: its open questions resolve now, without an answer. */
  exited(worker: Worker): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== worker) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
  }
}
