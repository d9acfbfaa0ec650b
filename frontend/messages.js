// @ts-check
// What the challenge page says to visitors, in one keyed table, so every
// sentence is found (and, later, translated) in one place. English only for
// now. No DOM access.

export const MESSAGES = Object.freeze({
  /** The answer is found but the server cannot be reached right now. */
  answerWaitingForNetwork: (/** @type {number} */ seconds) =>
    `Your answer is ready, but the server cannot be reached. Trying again in ${seconds} s (or as soon as you are back online).`,
  answerSending: 'Your answer is ready; sending it to the server…',
  answerResumed: 'Sending the answer you found earlier…',
  renewExpired: 'The check took longer than its time limit, so a new one has started.',
  renewSpent: 'That check was already used, so a new one has started.',
  renewAddress: 'Your network address changed (for example from Wi-Fi to mobile data), so a new check has started.',
  waitingForOtherTab: 'This check is already running in another tab of this browser. This tab will continue when it is done.',
  doneInOtherTab: 'Another tab of this browser finished the check.',
  doneInOtherTabStay: 'Another tab of this browser finished the check. You can now go back to the page you wanted.',
});
