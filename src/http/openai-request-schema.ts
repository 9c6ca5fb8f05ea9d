import { z } from 'zod';
import type { ChatMessage, Sampling } from '../chat/ports';
import { AppError } from '../errors/app-error';
import { unsupportedParameter, type OpenAiErrorDetails } from './openai-errors';

export interface CompletionLimits {
  maxMessages: number;
  /** Per message, once its text parts are joined. */
  maxCharacters: number;
  /** The most `max_tokens` (or `max_completion_tokens`) a request may ask, and what it gets without. */
  maxTokens: number;
}

/** A POST /v1/chat/completions body, as the service honours it. */
export interface CompletionBody {
  /** Undefined when the request names none. */
  model: string | undefined;
  messages: ChatMessage[];
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the usage. */
  includeUsage: boolean;
  maxTokens: number;
  temperature: number | undefined;
  /** top_p, penalties, stop, seed and user, as asked (the provider passes them on). */
  sampling: Sampling;
}

/** Passed on to the model as they are. */
const SAMPLING_FIELDS = ['top_p', 'presence_penalty', 'frequency_penalty', 'stop', 'seed', 'user'] as const;

interface Refusal {
  message: string;
  /** Values that ask for nothing this service does not do; absent: none but null. */
  accepts?: z.ZodType;
}

/**
 * Fields of OpenAI's request this service cannot honour, refused with a message of their own
 * (any other unknown field is refused too, in general terms). Null always means "not asked".
 */
const REFUSALS = new Map<string, Refusal>(
  Object.entries({
    tools: { message: 'tools (function calling) are not supported by this service.' },
    tool_choice: { message: 'tool_choice is not supported: this service takes no tools.' },
    parallel_tool_calls: { message: 'parallel_tool_calls is not supported: this service takes no tools.' },
    functions: { message: 'functions (function calling) are not supported by this service.' },
    function_call: { message: 'function_call is not supported: this service takes no functions.' },
    response_format: {
      message: 'response_format is not supported: this service answers plain text (no JSON mode, no structured outputs).',
      accepts: z.strictObject({ type: z.literal('text') }),
    },
    n: { message: 'n must be 1: this service generates one choice per request.', accepts: z.literal(1) },
    audio: { message: 'audio output is not supported by this service.' },
    modalities: {
      message: 'modalities may only be ["text"]: this service answers text only.',
      accepts: z.array(z.literal('text')).min(1),
    },
    logprobs: { message: 'logprobs are not supported by this service.', accepts: z.literal(false) },
    top_logprobs: { message: 'top_logprobs is not supported by this service.' },
    store: { message: 'store is not supported: this endpoint stores nothing.', accepts: z.literal(false) },
  } satisfies Record<string, Refusal>),
);

const roleSchema = z.enum(['system', 'developer', 'user', 'assistant'], {
  error: 'must be "system", "developer", "user" or "assistant" ("tool" messages need tools, which this service does not support)',
});

/** Why a content part that is not text is refused. */
const REFUSED_PARTS: Record<string, string> = {
  image_url: 'image parts are not supported: this service sends text only to the model',
  input_audio: 'audio parts are not supported: this service sends text only to the model',
  file: 'file parts are not supported: this service sends text only to the model',
};

/** A message's content: a string, or text parts joined into one. */
const contentSchema = z.unknown().transform((content, context) => {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content) || content.length === 0) {
    context.addIssue({ code: 'custom', message: 'must be a string or a non-empty array of text parts' });
    return z.NEVER;
  }
  let text = '';
  for (const [index, part] of content.entries()) {
    const type = isRecord(part) ? part.type : undefined;
    if (type === 'text' && typeof part.text === 'string' && Object.keys(part).length === 2) {
      text += part.text;
      continue;
    }
    const message =
      typeof type === 'string' && type !== 'text'
        ? (REFUSED_PARTS[type] ?? `parts of type "${type}" are not supported: only "text" parts are`)
        : 'a text part must be { "type": "text", "text": "..." }';
    context.addIssue({ code: 'custom', message, path: [index] });
    return z.NEVER;
  }
  return text;
}).meta({ description: 'A string, or a non-empty array of text parts `{ "type": "text", "text": "…" }`, joined into one.' });

function completionSchema(limits: CompletionLimits) {
  const { maxMessages, maxCharacters, maxTokens } = limits;
  const tokens = z
    .number({ error: `must be a whole number from 1 to ${maxTokens}` })
    .int(`must be a whole number from 1 to ${maxTokens}`)
    .min(1, `must be a whole number from 1 to ${maxTokens}`)
    .max(maxTokens, `must be at most ${maxTokens}, this service's limit`);
  const penalty = z.number({ error: 'must be a number from -2 to 2' }).min(-2, 'must be a number from -2 to 2').max(2, 'must be a number from -2 to 2');
  const message = z.strictObject({ role: roleSchema, content: contentSchema }).refine((value) => value.content.length <= maxCharacters, {
    message: `must have at most ${maxCharacters} characters`,
    path: ['content'],
  });
  return z.strictObject({
    model: z.string({ error: 'must be a string' }).nullish(),
    messages: z
      .array(message, { error: (issue) => (issue.input === undefined ? 'is required' : 'must be an array of messages') })
      .min(1, 'must hold at least one message')
      .max(maxMessages, `must hold at most ${maxMessages} messages, this service's limit`),
    stream: z.boolean({ error: 'must be true or false' }).nullish(),
    stream_options: z.strictObject({ include_usage: z.boolean({ error: 'must be true or false' }).nullish() }).nullish(),
    max_tokens: tokens.nullish(),
    max_completion_tokens: tokens.nullish(),
    temperature: z.number({ error: 'must be a number from 0 to 2' }).min(0, 'must be a number from 0 to 2').max(2, 'must be a number from 0 to 2').nullish(),
    top_p: z.number({ error: 'must be a number from 0 to 1' }).min(0, 'must be a number from 0 to 1').max(1, 'must be a number from 0 to 1').nullish(),
    presence_penalty: penalty.nullish(),
    frequency_penalty: penalty.nullish(),
    stop: z
      .union([z.string(), z.array(z.string()).max(4, 'must hold at most 4 sequences')], { error: 'must be a string or an array of up to 4 strings' })
      .nullish(),
    seed: z.number({ error: 'must be a whole number' }).int('must be a whole number').nullish(),
    user: z.string({ error: 'must be a string' }).max(256, 'must be at most 256 characters').nullish(),
  });
}

/**
 * The body of POST /v1/chat/completions as the OpenAPI document shows it: the schema the parser
 * validates with, plus the fields it refuses, each with the only values it accepts (null, or what
 * asks for nothing this service does not do). Cross-field rules stay in the parser.
 */
export function completionRequestSchema(limits: CompletionLimits) {
  const refused = Object.fromEntries(
    [...REFUSALS].map(([field, refusal]) => [field, (refusal.accepts ?? z.null()).nullish().meta({ description: refusal.message })]),
  );
  return completionSchema(limits).extend(refused);
}

/**
 * Reads bodies of POST /v1/chat/completions as this service can honour them. `developer` messages
 * are sent as `system`, which is what they mean to models that predate them. The function it
 * returns throws AppError invalid_request naming the first field at fault (OpenAI's `param`): a
 * field the service cannot honour is refused, never dropped.
 */
export function completionRequestParser(limits: CompletionLimits): (input: unknown) => CompletionBody {
  const schema = completionSchema(limits);
  return (input) => parseCompletionRequest(input, schema, limits.maxTokens);
}

function parseCompletionRequest(input: unknown, schema: ReturnType<typeof completionSchema>, defaultMaxTokens: number): CompletionBody {
  if (!isRecord(input)) throw invalidRequest(null, 'The request body must be a JSON object.');
  for (const [field, value] of Object.entries(input)) {
    const refusal = REFUSALS.get(field);
    if (refusal && value !== null && !refusal.accepts?.safeParse(value).success) throw unsupportedParameter(field, refusal.message);
  }
  // fromEntries makes every field an own property, `__proto__` included, so the strict schema sees it.
  const asked = Object.fromEntries(Object.entries(input).filter(([field]) => !REFUSALS.has(field)));
  const parsed = schema.safeParse(asked);
  if (!parsed.success) throw fromIssue(parsed.error.issues[0]!);
  const body = parsed.data;
  if (body.stream_options && body.stream !== true) {
    throw invalidRequest('stream_options', "stream_options is only allowed when 'stream' is true.");
  }
  const { max_tokens: maxTokens, max_completion_tokens: maxCompletionTokens } = body;
  if (maxTokens != null && maxCompletionTokens != null && maxTokens !== maxCompletionTokens) {
    throw invalidRequest('max_tokens', 'Send max_tokens or max_completion_tokens, not both with different values.');
  }
  return {
    model: body.model ?? undefined,
    messages: body.messages.map(({ role, content }) => ({ role: role === 'developer' ? 'system' : role, content })),
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    maxTokens: maxTokens ?? maxCompletionTokens ?? defaultMaxTokens,
    temperature: body.temperature ?? undefined,
    sampling: Object.fromEntries(
      SAMPLING_FIELDS.filter((field) => body[field] !== null && body[field] !== undefined).map((field) => [field, body[field]]),
    ) as Sampling,
  };
}

/** The first problem zod found, named as OpenAI names a field: `messages[0].content`. */
function fromIssue(issue: z.core.$ZodIssue): AppError {
  if (issue.code === 'unrecognized_keys') {
    const param = paramOf([...issue.path, issue.keys[0]!]);
    return unsupportedParameter(param, `${param} is not supported by this service.`);
  }
  const param = paramOf(issue.path);
  return invalidRequest(param || null, param ? `Invalid '${param}': ${issue.message}.` : `${issue.message}.`);
}

function paramOf(path: PropertyKey[]): string {
  return path.map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index === 0 ? '' : '.'}${String(key)}`)).join('');
}

function invalidRequest(param: string | null, message: string): AppError {
  const details: OpenAiErrorDetails = { param, code: null };
  return new AppError('invalid_request', message, { details });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
