import { isReasoningModel } from '../../src/llm/create-provider';

test.each([
  ['o1', true],
  ['o1-preview', true],
  ['o3-mini', true],
  ['o4-mini', true],
  ['my-o3-deployment', true],
  ['gpt-5', true],
  ['gpt-5-mini', true],
  ['gpt-4o', false],
  ['gpt-4.1', false],
  ['gpt-35-turbo', false],
  ['llama3.2', false],
  ['pro1', false],
  ['prod', false],
])('%s is a reasoning model: %s', (model, expected) => {
  expect(isReasoningModel(model)).toBe(expected);
});
