import geoip from 'geoip-lite';

/**
 * ISO country of an IP from the GeoLite data shipped in the geoip-lite
 * package (loaded once, nothing downloaded at run time); '' when unknown,
 * private or loopback.
 */
export function countryOf(ip: string): string {
  if (!ip) return '';
  return geoip.lookup(ip.startsWith('::ffff:') ? ip.slice(7) : ip)?.country ?? '';
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
  for (const [re, name] of FRAMEWORKS) if (re.test(poweredBy) || re.test(server)) return name;
  return '';
}
