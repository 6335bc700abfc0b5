/**
 * A small stand-in for a browser over plain HTTP: a cookie jar with path scoping and redirects followed by hand,
 * so a test sees every hop of a sign-in and stops where the app's redirect_uri is reached.
 */
interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

export interface Page {
  url: string;
  status: number;
  html: string;
  headers: Headers;
}

export class BrowserAgent {
  private cookies: StoredCookie[] = [];

  /** The same browser (same cookies) with its requests routed elsewhere, e.g. to another instance. */
  rerouted(route: (url: string) => string): BrowserAgent {
    const twin = new BrowserAgent(this.stopAt, route);
    twin.cookies = this.cookies;
    return twin;
  }

  /** `route` maps every URL before it is requested: a test can send the same browser to another instance. */
  constructor(
    private readonly stopAt: string,
    private readonly route: (url: string) => string = (url) => url,
  ) {}

  /** The Cookie header this browser sends to `url`. */
  cookieHeader(url: URL) {
    return this.cookies
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** A cookie as a page's script or an earlier visit would have left it. */
  setCookie(name: string, value: string, path = '/') {
    this.cookies = [...this.cookies.filter((c) => !(c.name === name && c.path === path)), { name, value, path }];
  }

  private remember(url: URL, response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attr = Object.fromEntries(attributes.map((a) => {
        const [k = '', v = ''] = a.split('=');
        return [k.toLowerCase(), v];
      }));
      const path = attr.path || url.pathname.replace(/\/[^/]*$/, '') || '/';
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.path === path));
      const expired = attr['max-age'] === '0' || (attr.expires && Date.parse(attr.expires) < Date.now()) || value === '';
      if (!expired) this.cookies.push({ name, value, path });
    }
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const target = new URL(this.route(url));
    const headers: Record<string, string> = { accept: 'text/html', ...init.headers };
    const cookie = this.cookieHeader(target);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.remember(target, response);
    return response;
  }

  /** Follows redirects until a page is reached, or the app's redirect URI (whose URL is then returned). */
  async visit(url: string, init?: Parameters<BrowserAgent['request']>[1]): Promise<Page> {
    let response = await this.request(url, init);
    let current = url;
    for (let hops = 0; response.status >= 300 && response.status < 400; hops++) {
      if (hops > 10) throw new Error('too many redirects');
      current = new URL(response.headers.get('location')!, current).toString();
      if (current.startsWith(this.stopAt)) return { url: current, status: response.status, html: '', headers: response.headers };
      response = await this.request(current);
    }
    return { url: current, status: response.status, html: await response.text(), headers: response.headers };
  }

  /** Submits the page's form whose action ends with `actionSuffix`, with its hidden fields and the given ones. */
  async submit(page: Page, actionSuffix: string, fields: Record<string, string> = {}): Promise<Page> {
    const formsIn = (html: string) => [...html.matchAll(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)];
    // The page's own forms first: the layout's header carries a sign-out form on every console page.
    const main = page.html.indexOf('<main');
    const form = [...(main >= 0 ? formsIn(page.html.slice(main)) : []), ...formsIn(page.html)].find(([, action]) => action!.endsWith(actionSuffix));
    if (!form) throw new Error(`no form ending in ${actionSuffix} on ${page.url}:\n${page.html.slice(0, 2000)}`);
    const hidden = Object.fromEntries(
      [...form[2]!.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map(([, n, v]) => [n!, decodeEntities(v!)]),
    );
    return this.visit(new URL(decodeEntities(form[1]!), page.url).toString(), { form: { ...hidden, ...fields } });
  }
}

function decodeEntities(text: string) {
  return text.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
