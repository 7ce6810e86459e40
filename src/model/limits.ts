/**
 * The limits the API enforces, so that nothing it accepts can break the data plane or the
 * router. Published in the OpenAPI document through the parameter schemas.
 */

/**
 * Farm and health check names. nft refuses a comment over 128 characters, and farm names end up
 * in chain comments (a 112-character name made every transaction fail); Fastify's router
 * refuses longer path parameters (MAX_PARAM_LENGTH), so every name the API creates can be
 * addressed.
 */
export const NAME_MAX_LENGTH = 64;

/**
 * Persistence timeout in seconds: 30 days. nft 1.0.6 refuses a set timeout of 100,000,000 s
 * or more ("value too large", the whole transaction fails); 30 days also stays below 2^32
 * milliseconds (49.7 days), the narrowest width any nft or kernel version has used for
 * timeouts.
 */
export const TTL_MAX_SECONDS = 2_592_000;

/** Backends per farm: the data plane numbers a farm's backends in 10 bits. */
export const MAX_BACKENDS_PER_FARM = 1024;

/** A backend's connection limit fits a signed 32-bit integer (conntrack counts are compared with it). */
export const MAX_CONNS_MAX = 2_147_483_647;

/** Health check texts: one line each, kept short enough to log and show. */
export const CHECK_DESCRIPTION_MAX_LENGTH = 256;
export const CHECK_COMMAND_MAX_LENGTH = 512;
