// @ts-check
// The JSON the two pages exchange with powgate, as JSDoc types in one place
// (the server's side: pow/src/wire.rs for the challenge API, and
// server/src/routes/admin.rs for the admin API). Types only: modules name
// them in JSDoc as import types of this file, and tsc checks the uses.

/**
 * @typedef {object} Argon2Params
 * @property {number} t_cost passes
 * @property {number} m_cost KiB
 * @property {number} parallelism lanes
 * @property {number} hash_length bytes
 */

/**
 * `POST /api/challenge` answer.
 *
 * @typedef {object} Challenge
 * @property {string} challenge the signed challenge, sent back with the answer
 * @property {'new' | 'refresh'} purpose
 * @property {string} salt 16 bytes, hex
 * @property {Argon2Params} argon2
 * @property {number} difficulty expected hashes to find a solution
 * @property {string} target 32 bytes, hex
 * @property {number} issued_at unix seconds
 * @property {number} expires_at unix seconds
 * @property {number} ticket_bits leading zero bits the admission ticket needs; 0: none
 */

/** @typedef {'desktop' | 'phone' | 'safari_ios'} DeviceClass */

/**
 * What a client reports about its search (all optional on the wire).
 *
 * @typedef {object} Telemetry
 * @property {number} hashes
 * @property {number} elapsed_ms
 * @property {number} workers
 * @property {DeviceClass | string} class the class the workers were sized for
 */

/**
 * `POST /api/solve` body.
 *
 * @typedef {object} SolveRequest
 * @property {string} challenge
 * @property {number} nonce
 * @property {number} [ticket] the admission ticket, when the challenge asks for one
 * @property {string} [refresh_token]
 * @property {Telemetry} [telemetry]
 * @property {string} [redir] where the visitor wants to go; the server checks it
 */

/**
 * `POST /api/solve` answer.
 *
 * @typedef {object} SolveResponse
 * @property {string} token also set as the powgate_token cookie
 * @property {boolean} refreshed an existing token was extended
 * @property {number} expires_at unix seconds
 * @property {string | null} [redirect] the request's `redir` when the
 *   server's redirect rule accepts it; null: stay on the page
 */

/**
 * Every error answer.
 *
 * @typedef {object} ErrorBody
 * @property {string} error a stable code
 * @property {string} message for people
 * @property {string} [field] the request field at fault
 * @property {number} [ahead] for `queued`: answers ahead of this one
 */

/**
 * `GET /api/config`, read by the challenge page.
 *
 * @typedef {object} PageConfig
 * @property {string[]} redirect_domains
 * @property {string | null} public_url
 * @property {string | null} site_name the operator's name for the site
 * @property {string | null} contact_url http(s) or mailto link for visitors
 */

// ---------------------------------------------------------------------------
// Admin API (api/admin/…)
// ---------------------------------------------------------------------------

/**
 * One live setting, from the server's settings table.
 *
 * @typedef {object} SettingSpec
 * @property {string} name
 * @property {string} config_key
 * @property {string} label
 * @property {string} unit empty for a plain count
 * @property {number} min
 * @property {number} max
 * @property {boolean} zero_is_off
 * @property {boolean} presets whether preset names are accepted
 * @property {number} default
 * @property {string} description
 */

/**
 * `GET`, `PATCH` and `DELETE /api/admin/settings` answer.
 *
 * @typedef {object} AdminSettings
 * @property {Record<string, number>} settings the values in force
 * @property {Record<string, number>} configured what a revert restores
 * @property {string | null} difficulty_preset
 * @property {Record<string, number>} presets
 * @property {Record<string, [number, number]>} ranges
 * @property {SettingSpec[]} specs in display order
 * @property {string[]} overridden set through the API
 * @property {Argon2Params} argon2
 * @property {number} token_purge_hours
 */

/** @typedef {{hour: number, day: number}} CountWindow */

/**
 * @typedef {object} TimelineBucket
 * @property {number} start unix seconds
 * @property {number} issued
 * @property {number} solved
 * @property {number} failed
 */

/** @typedef {{bucket_seconds: number, buckets: TimelineBucket[]}} Timeline */

/** @typedef {{le_ms: number | null, count: number}} HistogramBucket `le_ms` null: +Inf */

/**
 * @typedef {object} SolveTimes
 * @property {number} samples
 * @property {number | null} p50_ms
 * @property {number | null} p95_ms
 * @property {HistogramBucket[]} histogram
 */

/**
 * @typedef {object} ClassEstimate
 * @property {DeviceClass} class
 * @property {string} label
 * @property {number} hash_rate whole-device hashes per second
 * @property {'measured' | 'reference'} source
 * @property {number} samples
 * @property {number} mean_seconds
 * @property {number} p95_seconds
 * @property {boolean} exceeds_timeout
 */

/**
 * `GET /api/admin/stats` answer.
 *
 * @typedef {object} AdminStats
 * @property {number} difficulty
 * @property {number} challenge_timeout_seconds
 * @property {{issued: CountWindow, solved: CountWindow, failed: CountWindow}} challenges
 * @property {number} active_tokens
 * @property {SolveTimes} solve_time
 * @property {Timeline} timeline per hour, 24 h
 * @property {Timeline} timeline_minutes per minute, 60 min
 * @property {ClassEstimate[]} device_classes
 */

/**
 * One row of `GET /api/admin/tokens`.
 *
 * @typedef {object} AdminToken
 * @property {number} id the token's number, which `POST /api/admin/tokens/{id}/revoke` takes
 * @property {number} created_at unix seconds
 * @property {number} expires_at unix seconds
 * @property {string[]} ips
 * @property {string} status
 * @property {number} refresh_count
 * @property {number} requests_used
 * @property {number} requests_total 0: no budget
 * @property {number} requests_per_minute
 */

/** @typedef {{tokens: AdminToken[], page: number, per_page: number, total: number}} AdminTokenPage */

export {};
