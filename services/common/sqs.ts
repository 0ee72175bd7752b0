/**
 * SQS client construction and queue URL resolution, shared by web and worker.
 */
import { CreateQueueCommand, GetQueueUrlCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Config } from './config.ts';
import { SqsError } from './errors.ts';
import type { Logger } from './logger.ts';

export interface SqsClientOptions {
  /** Extra time allowed on top of the request timeout (a long poll's wait time), in ms. Default 0. */
  extraTimeoutMs?: number;
  /** Most sockets open to SQS at once. Default 50. */
  maxSockets?: number;
}

/**
 * Builds an SQS client with bounded timeouts and retries. Credentials come from
 * the SDK's default chain (IAM role, environment); against an emulator
 * endpoint without credentials, dummy ones are used.
 */
export function createSqsClient(config: Config['sqs'], options: SqsClientOptions = {}, env = process.env): SQSClient {
  const emulator = config.endpoint !== undefined;
  const useDummyCredentials =
    emulator && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE && !env.AWS_WEB_IDENTITY_TOKEN_FILE;
  const requestTimeout = config.requestTimeoutMs + (options.extraTimeoutMs ?? 0);
  return new SQSClient({
    region: config.region,
    ...(emulator ? { endpoint: config.endpoint, useQueueUrlAsEndpoint: false } : {}),
    ...(useDummyCredentials ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    maxAttempts: config.maxAttempts,
    requestHandler: {
      connectionTimeout: Math.min(config.requestTimeoutMs, 3000),
      requestTimeout,
      throwOnRequestTimeout: true,
      httpAgent: { keepAlive: true, maxSockets: options.maxSockets ?? 50 },
      httpsAgent: { keepAlive: true, maxSockets: options.maxSockets ?? 50 },
    },
  });
}

/** SQS's limit on one message and on a batch's total, attributes included, where a queue does not say otherwise (256 KiB). */
export const SQS_MAX_MESSAGE_BYTES = 256 * 1024;

/** URLs of the two queues. */
export interface QueueUrls {
  form: string;
  invalid: string;
}

/** The form queue's URL with GetQueueUrl (what the web needs: its IAM role names no other queue), unless `createQueues`. */
export async function resolveFormQueueUrl(client: SQSClient, config: Config['sqs'], logger: Logger): Promise<string> {
  if (config.createQueues) return (await resolveQueueUrls(client, config, logger)).form;
  return getQueueUrl(client, config.formQueueName);
}

/**
 * Resolves queue URLs with GetQueueUrl; with `createQueues`, creates missing
 * ones (the form queue with a redrive policy to the invalid queue).
 * @throws SqsError
 */
export async function resolveQueueUrls(client: SQSClient, config: Config['sqs'], logger: Logger): Promise<QueueUrls> {
  if (config.createQueues) {
    const invalid = await createQueue(client, config.invalidQueueName, {});
    const arn = await queueArn(client, invalid, config.invalidQueueName);
    const form = await createQueue(client, config.formQueueName, {
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: 50 }),
    });
    logger.info({ form, invalid }, 'queues ready');
    return { form, invalid };
  }
  const [form, invalid] = await Promise.all([
    getQueueUrl(client, config.formQueueName),
    getQueueUrl(client, config.invalidQueueName),
  ]);
  return { form, invalid };
}

/**
 * The URL of the replaced service's live queue (SQS_ORIGINAL_QUEUE_NAME); with
 * `createQueues`, created as that service creates it (no attributes).
 * @throws SqsError
 */
export async function resolveOriginalQueueUrl(client: SQSClient, config: Config['sqs'], name: string): Promise<string> {
  return config.createQueues ? createQueue(client, name, {}) : getQueueUrl(client, name);
}

async function getQueueUrl(client: SQSClient, name: string): Promise<string> {
  try {
    const out = await client.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!out.QueueUrl) throw new Error('no QueueUrl in response');
    return out.QueueUrl;
  } catch (error) {
    throw new SqsError({ operation: 'GetQueueUrl', queue: name }, error);
  }
}

async function createQueue(client: SQSClient, name: string, attributes: Record<string, string>): Promise<string> {
  try {
    // IAM: local only (SQS_CREATE_QUEUES), so in no production policy (test/iam.test.ts).
    const out = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
    if (!out.QueueUrl) throw new Error('no QueueUrl in response');
    return out.QueueUrl;
  } catch (error) {
    throw new SqsError({ operation: 'CreateQueue', queue: name }, error);
  }
}

async function queueArn(client: SQSClient, url: string, name: string): Promise<string> {
  try {
    // IAM: local only (SQS_CREATE_QUEUES), so in no production policy (test/iam.test.ts).
    const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    const arn = out.Attributes?.QueueArn;
    if (!arn) throw new Error('no QueueArn in response');
    return arn;
  } catch (error) {
    throw new SqsError({ operation: 'GetQueueAttributes', queue: name }, error);
  }
}
