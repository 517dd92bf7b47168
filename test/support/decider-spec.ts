// given / when / then for the profile decider: each rule of the rule book in five lines.
import * as E from 'fp-ts/lib/Either.js';
import { expect } from 'vitest';
import type { ProfileEvent } from '../../domain/events.js';
import { decide, stateFrom, type ProfileCommand, type ProfileError } from '../../domain/profile-decider.js';

export function given(history: readonly ProfileEvent[]) {
  return {
    when(command: ProfileCommand) {
      const result = decide(command, stateFrom(history));
      return {
        then(expected: readonly ProfileEvent[]) {
          expect(result).toEqual(E.right(expected));
        },
        thenError(expected: Partial<ProfileError>) {
          expect(E.isLeft(result) ? result.left : 'no error').toMatchObject(expected);
        },
      };
    },
  };
}
