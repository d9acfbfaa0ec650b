// @ts-check
// The answer the page sends to POST /api/solve, and where the server's reply
// sends the visitor. Where to go is the server's decision (its one redirect
// rule, server/src/redirect.rs): the page sends the `?redir=` it was given
// and follows only what comes back. No DOM access (see tests/answer.test.mjs).

/**
 * The optional `telemetry` of POST /api/solve: what the search took, and the
 * device class it was sized for (see deviceClass in caps.js).
 *
 * @param {{hashes: number, elapsedMs: number, workers: number, deviceClass: string}} found
 */
export function solveTelemetry({ hashes, elapsedMs, workers, deviceClass: cls }) {
  return {
    hashes: Math.round(hashes),
    elapsed_ms: Math.round(elapsedMs),
    workers,
    class: cls,
  };
}

/**
 * The body of POST /api/solve.
 *
 * @param {{challenge: string}} challenge
 * @param {{nonce: number, hashes: number, elapsedMs: number, workers: number, deviceClass: string}} found
 * @param {number | null} ticket the admission ticket; null when none is asked for
 * @param {string | null} redir the page's `?redir=`, sent as it is: the
 *   server decides whether it may be followed
 * @returns {import('./shared/wire.js').SolveRequest}
 */
export function solveRequest(challenge, found, ticket, redir) {
  return {
    challenge: challenge.challenge,
    nonce: found.nonce,
    ...(ticket === null ? {} : { ticket }),
    telemetry: solveTelemetry(found),
    ...(redir ? { redir } : {}),
  };
}

/**
 * Where the page sends the visitor after the server's answer: its
 * `redirect` and nothing else (null: stay on the page). `refused` when the
 * visitor came with a `?redir=` the server did not accept, which the page
 * says rather than silently ignoring it.
 *
 * @param {unknown} answer the parsed body of a 200 from /api/solve
 * @param {string | null} redir the page's `?redir=`
 * @returns {{target: string | null, refused: boolean}}
 */
export function redirectPlan(answer, redir) {
  const redirect = answer && typeof answer === 'object'
    ? /** @type {{redirect?: unknown}} */ (answer).redirect
    : undefined;
  const target = typeof redirect === 'string' && redirect !== '' ? redirect : null;
  return { target, refused: Boolean(redir) && target === null };
}
