/**
 * The dashboard (`GET /` on the admin listener): one HTML page, one stylesheet and one script, served from memory.
 * The page reads /status once a second and calls the /servers/* routes (page-script.ts); it loads nothing from
 * anywhere else.
 *
 * The headers hold it to that, and keep other sites out:
 * - a Content-Security-Policy that allows only the admin's own script, style and fetches (no inline script, so
 *   a server address that looked like markup could not run even if it reached the page unescaped, which it does not:
 *   the script writes text only);
 * - `frame-ancestors 'none'` and `X-Frame-Options: DENY`: a page framing the dashboard could trick a click on
 *   "Drain", and that click's request would be same-origin, which the admin's cross-site checks let through;
 * - `Cross-Origin-Resource-Policy: same-origin`, `nosniff`, and no caching (the page is small, and a stale script
 *   after an upgrade would misread /status).
 * What every admin request gets still holds: the page, like /status, is refused under a Host that could be rebound
 * (request-guard.ts), and its button clicks are mutations checked like any other.
 */
import { PAGE_CSS } from './page-css.js';
import { PAGE_HTML } from './page-html.js';
import { PAGE_SCRIPT } from './page-script.js';

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

export const DASHBOARD_ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/', { type: 'text/html; charset=utf-8', body: Buffer.from(PAGE_HTML) }],
  ['/dashboard.css', { type: 'text/css; charset=utf-8', body: Buffer.from(PAGE_CSS) }],
  ['/dashboard.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(PAGE_SCRIPT) }],
]);

export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-store',
};
