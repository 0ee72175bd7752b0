/**
 * The SQS emulator (fauxqs) on an ephemeral port, in the calling process, and
 * helpers that read queues through the real AWS SDK (tests, benchmark, chaos run).
 */
import { startFauxqs } from 'fauxqs';
import {
  SQSClient,
  ReceiveMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type Message,
} from '@aws-sdk/client-sqs';

export interface Emulator {
  endpoint: string;
  stop(): Promise<void>;
}

/** Starts fauxqs on a free port. */
export async function startEmulator(): Promise<Emulator> {
  const server = await startFauxqs({ port: 0, logger: false });
  return { endpoint: server.address, stop: () => server.stop() };
}

/** An SDK client for the emulator, as the tests' own observer. */
export function observerClient(endpoint: string, region = 'eu-west-1'): SQSClient {
  return new SQSClient({
    region,
    endpoint,
    useQueueUrlAsEndpoint: false,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

export async function queueUrl(client: SQSClient, name: string): Promise<string> {
  const out = await client.send(new GetQueueUrlCommand({ QueueName: name }));
  return out.QueueUrl!;
}

/** Visible + in flight + delayed message counts. */
export async function queueCounts(
  client: SQSClient,
  url: string,
): Promise<{ visible: number; inFlight: number; delayed: number }> {
  const out = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const a = out.Attributes ?? {};
  return {
    visible: Number(a.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
    delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
  };
}

/** Receives (and leaves in flight) up to `max` messages, with their attributes. */
export async function receiveAll(client: SQSClient, url: string, max = 10): Promise<Message[]> {
  const out: Message[] = [];
  for (;;) {
    const r = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 300,
      }),
    );
    const got = r.Messages ?? [];
    out.push(...got);
    if (got.length === 0 || out.length >= max) return out;
  }
}
