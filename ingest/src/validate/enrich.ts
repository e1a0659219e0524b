import geoip from 'geoip-lite';

/**
 * ISO country of an IP from the GeoLite data shipped in the geoip-lite
 * package (loaded once, nothing downloaded at run time); '' when unknown,
 * private or loopback.
 */
export function countryOf(ip: string): string {
  if (!ip) return '';
  let country = countryCache.get(ip);
  if (country === undefined) {
    country = geoip.lookup(ip.startsWith('::ffff:') ? ip.slice(7) : ip)?.country ?? '';
    remember(countryCache, ip, country);
  }
  return country;
}

/** Lookups repeat heavily (the same visitors, the same dev servers): keep recent answers. */
const CACHE_MAX = 50_000;
const countryCache = new Map<string, string>();
const frameworkCache = new Map<string, string>();
function remember(cache: Map<string, string>, key: string, value: string): void {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, value);
}

/** Framework hints in `x-powered-by` and `server`, most specific first. */
const FRAMEWORKS: [RegExp, string][] = [
  [/next\.js/i, 'Next.js'],
  [/nuxt/i, 'Nuxt'],
  [/sveltekit/i, 'SvelteKit'],
  [/remix/i, 'Remix'],
  [/astro/i, 'Astro'],
  [/vite/i, 'Vite'],
  [/express/i, 'Express'],
  [/fastify/i, 'Fastify'],
  [/koa/i, 'Koa'],
  [/hono/i, 'Hono'],
  [/php/i, 'PHP'],
  [/asp\.net/i, 'ASP.NET'],
  [/django|wsgiserver/i, 'Django'],
  [/uvicorn|hypercorn/i, 'FastAPI/ASGI'],
  [/werkzeug/i, 'Flask'],
  [/gunicorn/i, 'Gunicorn'],
  [/puma|unicorn|webrick/i, 'Rails/Rack'],
  [/phusion passenger/i, 'Passenger'],
  [/kestrel/i, 'ASP.NET'],
  [/jetty|tomcat/i, 'Java servlet'],
  [/deno/i, 'Deno'],
  [/bun/i, 'Bun'],
  [/caddy/i, 'Caddy'],
  [/nginx/i, 'nginx'],
  [/apache/i, 'Apache'],
];

/** The framework a response came from, guessed from its headers (most specific match wins); '' when there is no hint. */
export function frameworkOf(server: string, poweredBy: string): string {
  if (!server && !poweredBy) return '';
  const key = `${server}\u0000${poweredBy}`;
  let name = frameworkCache.get(key);
  if (name === undefined) {
    name = FRAMEWORKS.find(([re]) => re.test(poweredBy) || re.test(server))?.[1] ?? '';
    remember(frameworkCache, key, name);
  }
  return name;
}
