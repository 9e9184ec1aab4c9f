'use strict'
/*
 * An LTI 1.3 tool played by ltijs, driven against a running gradebook.
 *
 * Usage: node tool.js CONFIG_JSON   (with NODE_PATH naming the node_modules
 * that `npm ci` made from package-lock.json beside this file)
 *
 * CONFIG_JSON holds: base (the platform URL and issuer), registrar_token,
 * sis_token, course_id, instructor, learners (user ids, the first one
 * launches), pg_url (a PostgreSQL server where ltijs may create and drop a
 * throwaway database of its own) and registration: "dynamic" (through
 * ltijs's own /register route) or "manual" (POST /api/tools, then
 * lti.registerPlatform).
 *
 * One process is the tool (ltijs on an ephemeral port on 127.0.0.1) and the
 * people in front of it: the registrar, the SIS asking for launches, and a
 * browser that follows the OIDC login and the form posts, carrying cookies.
 * The AGS and NRPS calls go through ltijs's own service APIs. It prints one
 * JSON object describing what it saw on stdout and exits 0; any failure
 * prints the reason on stderr and exits 1.
 */

const http = require('http')
const crypto = require('crypto')
const pg = require('pg')
const lti = require('ltijs').Provider
const Database = require('ltijs-sequelize')

// stdout carries the report alone (umzug, under ltijs-sequelize, logs there).
for (const level of ['log', 'info', 'debug', 'warn']) console[level] = (...args) => console.error(...args)

class Failure extends Error {}

function check (cond, message) {
  if (!cond) throw new Failure(typeof message === 'function' ? message() : message)
}

const show = (v) => JSON.stringify(v)

// --- HTTP: node's own client, so that every Set-Cookie line comes apart
// (the fetch of some node builds joins them into one) ---------------------

function httpRequest (url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        text: Buffer.concat(chunks).toString('utf8')
      }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(30000, () => req.destroy(new Failure(`${method} ${url}: no answer in 30 s`)))
    if (body !== undefined) req.write(body)
    req.end()
  })
}

const isRedirect = (res) => res.status >= 300 && res.status < 400 && res.headers.location

// --- a browser: cookies per origin, redirects followed by hand --------------

class Browser {
  constructor () {
    this.jars = new Map()
  }

  jar (url) {
    const origin = new URL(url).origin
    if (!this.jars.has(origin)) this.jars.set(origin, new Map())
    return this.jars.get(origin)
  }

  keep (url, res) {
    const jar = this.jar(url)
    for (const line of res.headers['set-cookie'] || []) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const gone = attrs.some((a) => {
        const [k, v] = a.split('=').map((s) => (s || '').trim().toLowerCase())
        return (k === 'max-age' && Number(v) <= 0) || (k === 'expires' && Date.parse(v) <= Date.now())
      })
      if (gone) jar.delete(name)
      else jar.set(name, value)
    }
  }

  async request (url, init = {}) {
    const cookies = [...this.jar(url)].map(([k, v]) => `${k}=${v}`).join('; ')
    const headers = { ...(init.headers || {}) }
    if (cookies) headers.cookie = cookies
    const res = await httpRequest(url, { ...init, headers })
    this.keep(url, res)
    return res
  }

  /** GET, following redirects; answers the last response and its URL. */
  async get (url, init = {}) {
    for (let hops = 0; hops < 10; hops++) {
      const res = await this.request(url, init)
      if (isRedirect(res)) {
        url = new URL(res.headers.location, url).toString()
        continue
      }
      return { res, url }
    }
    throw new Failure(`too many redirects at ${url}`)
  }

  /** POST a form, following the redirect that answers it. */
  async postForm (url, fields) {
    const res = await this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString()
    })
    if (isRedirect(res)) return this.get(new URL(res.headers.location, url).toString())
    return { res, url }
  }
}

const unescape = (s) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
  .replace(/&gt;/g, '>').replace(/&amp;/g, '&')

/** The action and hidden fields of the first form of a page. */
function readForm (html) {
  const action = /<form[^>]*\saction="([^"]*)"/i.exec(html)
  const fields = {}
  for (const m of html.matchAll(/<input[^>]*>/gi)) {
    const name = /\sname="([^"]*)"/i.exec(m[0])
    const value = /\svalue="([^"]*)"/i.exec(m[0])
    if (name) fields[unescape(name[1])] = value ? unescape(value[1]) : ''
  }
  return { action: action ? unescape(action[1]) : null, fields }
}

// --- the platform's registrar and SIS faces ------------------------------------

const parse = (text) => { try { return JSON.parse(text) } catch (_) { return null } }

async function api (cfg, token, method, path, body) {
  const res = await httpRequest(cfg.base + path, {
    method,
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, json: parse(res.text), text: res.text }
}

async function apiOk (cfg, token, method, path, body, want) {
  const r = await api(cfg, token, method, path, body)
  check(r.status === want, () => `${method} ${path}: ${r.status} ${r.text}`)
  return r.json
}

// --- the tool ---------------------------------------------------------------

/** What ltijs handed the tool's routes, by ltik. */
const landed = new Map()

function land (token, req, res) {
  const ltik = res.locals.ltik
  landed.set(ltik, { token, path: req.path })
  res.json({ ltik })
}

async function throwawayDatabase (pgUrl) {
  const name = 'gradebook_ltijs_' + crypto.randomBytes(6).toString('hex')
  const admin = new pg.Client({ connectionString: pgUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(pgUrl)
  return {
    name,
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password || ''),
    host: u.hostname,
    port: Number(u.port || 5432),
    async drop () {
      const c = new pg.Client({ connectionString: pgUrl })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    }
  }
}

async function startTool (cfg, db) {
  // Listen first: dynamic registration needs the tool's own URL at setup.
  let app = (req, res) => { res.statusCode = 503; res.end() }
  const server = http.createServer((req, res) => app(req, res))
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const url = `http://127.0.0.1:${server.address().port}`
  const plugin = new Database(db.name, db.user, db.password, {
    host: db.host, port: db.port, dialect: 'postgres', logging: false
  })
  lti.setup(crypto.randomBytes(32).toString('hex'), { plugin }, {
    appRoute: '/',
    loginRoute: '/login',
    keysetRoute: '/keys',
    dynRegRoute: '/register',
    cookies: { secure: false, sameSite: 'Lax' },
    dynReg: {
      url,
      name: 'ltijs e2e tool',
      description: 'ltijs driven by the gradebook end-to-end test',
      // The deep-linked quiz is launched at its own URL.
      redirectUris: [url + '/quiz'],
      autoActivate: true
    }
  })
  lti.onConnect(land)
  lti.onDeepLinking(land)
  lti.app.get('/quiz', (req, res) => land(res.locals.token, req, res))
  // The teacher's choice in the tool's deep-linking page.
  lti.app.post('/deep-link', async (req, res) => {
    try {
      const form = await lti.DeepLinking.createDeepLinkingForm(res.locals.token, req.body.items, { message: 'Added by ltijs' })
      res.send(form)
    } catch (e) {
      res.status(500).send(String(e && e.stack))
    }
  })
  await lti.deploy({ serverless: true, silent: true })
  app = lti.app
  return { url, server }
}

// --- registration ----------------------------------------------------------

async function registerDynamically (cfg, tool) {
  const start = await apiOk(cfg, cfg.registrar_token, 'POST', '/api/tools/dynamic-registration',
    { registration_url: tool.url + '/register' }, 200)
  const opened = new URL(start.url)
  check(opened.origin + opened.pathname === tool.url + '/register', `registration URL ${start.url}`)
  // The registrar's browser opens the tool's registration page.
  const browser = new Browser()
  const { res } = await browser.get(start.url)
  const page = res.text
  check(res.status === 200, () => `ltijs /register: ${res.status} ${page}`)
  const closes = page.includes('org.imsglobal.lti.close')
  // ltijs registered the platform by its issuer.
  const platforms = await lti.getPlatform(cfg.base)
  check(platforms && platforms.length === 1, () => `ltijs platforms for ${cfg.base}: ${show(platforms)}`)
  const clientId = await platforms[0].platformClientId()
  const { tools } = await apiOk(cfg, cfg.registrar_token, 'GET', '/api/tools', undefined, 200)
  const mine = tools.filter((t) => t.client_id === clientId)
  check(mine.length === 1, () => `no tool with client_id ${clientId}: ${show(tools)}`)
  const t = mine[0]
  // The registrar turns grading and the roster on, having looked at it.
  await apiOk(cfg, cfg.registrar_token, 'PATCH', `/api/tools/${t.tool_id}`,
    { grading: 'full', roster: { access: true } }, 200)
  return {
    mode: 'dynamic',
    page_closes_window: closes,
    tool_id: t.tool_id,
    client_id: clientId,
    platform_active: await platforms[0].platformActive(),
    auth_config: await platforms[0].platformAuthConfig()
  }
}

async function registerByHand (cfg, tool) {
  const made = await apiOk(cfg, cfg.registrar_token, 'POST', '/api/tools', {
    name: 'ltijs e2e tool',
    issuer: tool.url,
    launch_url: tool.url,
    login_url: tool.url + '/login',
    redirect_uris: [tool.url, tool.url + '/quiz'],
    jwks_url: tool.url + '/keys',
    deep_linking_url: tool.url,
    grading: 'full',
    roster: { access: true, hide_names: false, hide_emails: false }
  }, 201)
  // The tool admin copies the platform details into ltijs.
  const p = made.platform
  await lti.registerPlatform({
    url: p.issuer,
    name: 'gradebook',
    clientId: made.client_id,
    authenticationEndpoint: p.authorization_url,
    accesstokenEndpoint: p.token_url,
    authConfig: { method: 'JWK_SET', key: p.jwks_url }
  })
  const platform = await lti.getPlatform(p.issuer, made.client_id)
  return {
    mode: 'manual',
    tool_id: made.tool_id,
    client_id: made.client_id,
    platform_active: await platform.platformActive(),
    auth_config: await platform.platformAuthConfig()
  }
}

// --- launches ---------------------------------------------------------------

/** SIS launch request, OIDC login through ltijs, validated by ltijs. */
async function launch (cfg, reg, user, kind, resourceLinkId) {
  const body = { tool_id: reg.tool_id, course_id: cfg.course_id, user_id: user, kind }
  if (resourceLinkId) body.resource_link_id = resourceLinkId
  const { login_initiation_url: loginUrl } = await apiOk(cfg, cfg.sis_token, 'POST', '/api/launches', body, 200)
  const login = Object.fromEntries(new URL(loginUrl).searchParams)

  const browser = new Browser()
  // ltijs's /login answers with a redirect to the platform's authorize endpoint.
  const toAuth = await browser.request(loginUrl)
  const authUrl = toAuth.headers.location
  check(toAuth.status === 302 && authUrl && authUrl.startsWith(cfg.base + '/lti/authorize?'),
    () => `ltijs login: ${toAuth.status} ${authUrl}`)
  const auth = Object.fromEntries(new URL(authUrl).searchParams)
  const { res: authRes } = await browser.get(authUrl)
  const authPage = authRes.text
  check(authRes.status === 200, () => `authorize: ${authRes.status} ${authPage}`)
  const form = readForm(authPage)
  check(form.action === login.target_link_uri, () => `the form posts to ${form.action}, not ${login.target_link_uri}`)
  check(form.fields.id_token, () => `no id_token in ${authPage}`)

  // The form post: ltijs validates the id_token, then redirects with an ltik.
  const { res, url } = await browser.postForm(form.action, form.fields)
  check(res.status === 200, () => `ltijs refused the launch at ${url}: ${res.status} ${res.text}`)
  const { ltik } = JSON.parse(res.text)
  const seen = landed.get(ltik)
  check(seen, `no launch landed for ${ltik}`)
  const c = seen.token.platformContext
  return {
    browser,
    ltik,
    token: seen.token,
    summary: {
      login_target_link_uri: login.target_link_uri,
      redirect_uri: auth.redirect_uri,
      served_path: seen.path,
      message_type: c.messageType,
      user: seen.token.user,
      roles: c.roles,
      context_id: c.context && c.context.id,
      resource_link_id: c.resource && c.resource.id,
      target_link_uri: c.targetLinkUri,
      custom: c.custom,
      lineitems: c.endpoint && c.endpoint.lineitems,
      lineitem: c.endpoint && c.endpoint.lineitem,
      scope: c.endpoint && c.endpoint.scope,
      memberships_url: c.namesRoles && c.namesRoles.context_memberships_url
    }
  }
}

function platformPageIds (html, attr) {
  return [...html.matchAll(new RegExp(`${attr}="([^"]*)"`, 'g'))].map((m) => unescape(m[1]))
}

async function deepLink (cfg, reg, tool) {
  const dl = await launch(cfg, reg, cfg.instructor, 'deep_linking')
  const settings = dl.token.platformContext.deepLinkingSettings
  check(dl.summary.message_type === 'LtiDeepLinkingRequest', `message type ${dl.summary.message_type}`)
  const customId = crypto.randomUUID()
  const items = [
    {
      type: 'ltiResourceLink',
      title: 'ltijs quiz',
      url: tool.url + '/quiz',
      custom: { id: customId },
      lineItem: { scoreMaximum: 50, label: 'ltijs quiz column', resourceId: 'ltijs-quiz', tag: 'grade' }
    },
    { type: 'ltiResourceLink', title: 'ltijs reading', url: tool.url }
  ]
  // The teacher picks the items in the tool; ltijs answers with its auto-posting form.
  const picked = await dl.browser.request(tool.url + '/deep-link', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + dl.ltik, 'content-type': 'application/json' },
    body: JSON.stringify({ items })
  })
  const formPage = picked.text
  check(picked.status === 200, () => `ltijs deep-link form: ${picked.status} ${formPage}`)
  const form = readForm(formPage)
  check(form.action === settings.deep_link_return_url, `ltijs posts to ${form.action}`)
  const { res } = await dl.browser.postForm(form.action, form.fields)
  const page = res.text
  check(res.status === 200, () => `deep-linking return: ${res.status} ${page}`)
  const again = await dl.browser.postForm(form.action, form.fields)
  return {
    launch: dl.summary,
    accept_types: settings.accept_types,
    accept_multiple: settings.accept_multiple,
    return_url: settings.deep_link_return_url,
    created_links: platformPageIds(page, 'data-resource-link-id'),
    created_line_items: platformPageIds(page, 'data-line-item-id'),
    custom_id: customId,
    quiz_url: tool.url + '/quiz',
    replay_status: again.res.status,
    replay_body: parse(again.res.text)
  }
}

// --- services through ltijs -------------------------------------------------

const ids = (items) => items.map((i) => i.id)

async function lineItems (token) {
  const G = lti.Grade
  const bonus = await G.createLineItem(token,
    { scoreMaximum: 10, label: 'ltijs bonus', tag: 'bonus', resourceId: 'ltijs-bonus' },
    { resourceLinkId: true })
  const participation = await G.createLineItem(token,
    { scoreMaximum: 5, label: 'ltijs participation', tag: 'participation' })
  const all = (await G.getLineItems(token)).lineItems
  const byLink = (await G.getLineItems(token, { resourceLinkId: true })).lineItems
  const byTag = (await G.getLineItems(token, { tag: 'bonus' })).lineItems
  const byResourceId = (await G.getLineItems(token, { resourceId: 'ltijs-quiz' })).lineItems
  // One at a time, following rel="next" as ltijs hands it back.
  const pages = []
  let page = await G.getLineItems(token, { limit: 1 })
  for (;;) {
    pages.push(ids(page.lineItems))
    if (!page.next || pages.length > 20) break
    page = await G.getLineItems(token, { url: page.next })
  }
  return {
    created: [bonus, participation],
    all,
    by_resource_link: ids(byLink),
    by_tag: ids(byTag),
    by_resource_id: ids(byResourceId),
    pages
  }
}

async function scores (cfg, token, quiz, bonus) {
  const G = lti.Grade
  const [ada, alan, bea, carl, dee, eve] = cfg.learners
  const done = { activityProgress: 'Completed', gradingProgress: 'FullyGraded' }
  const sent = [
    // 17 of 20 on a column of 50: rescaled.
    [quiz, { userId: ada, scoreGiven: 17, scoreMaximum: 20, ...done }],
    // Numeric strings, as some tools send them.
    [quiz, { userId: alan, scoreGiven: '36.50', scoreMaximum: '50', ...done }],
    // Zero is a score.
    [quiz, { userId: bea, scoreGiven: 0, scoreMaximum: 50, ...done }],
    // Handed in, waiting for the teacher: no score yet.
    [quiz, { userId: carl, activityProgress: 'Submitted', gradingProgress: 'PendingManual' }],
    // Scored by the tool, still to be looked at by the teacher.
    [quiz, { userId: eve, scoreGiven: 12, scoreMaximum: 50, activityProgress: 'Completed', gradingProgress: 'PendingManual' }],
    // No scoreMaximum: ltijs reads the line item's and sends that.
    [quiz, { userId: dee, scoreGiven: 40, ...done }],
    [bonus, { userId: ada, scoreGiven: 7.5, scoreMaximum: 10, ...done, comment: 'Well argued' }]
  ]
  const submitted = []
  for (const [item, score] of sent) {
    const out = await G.submitScore(token, item, { ...score })
    submitted.push({ lineitem: item, score: out })
  }
  const results = (await G.getScores(token, quiz)).scores
  const adaOnly = (await G.getScores(token, quiz, { userId: ada })).scores
  const pages = []
  let page = await G.getScores(token, quiz, { limit: 2 })
  for (;;) {
    pages.push(page.scores)
    if (!page.next || pages.length > 20) break
    page = await G.getScores(token, quiz, { url: page.next })
  }
  const bonusResults = (await G.getScores(token, bonus)).scores
  return { submitted, results, ada_only: adaOnly, pages, bonus_results: bonusResults }
}

async function members (token) {
  const N = lti.NamesAndRoles
  const all = await N.getMembers(token)
  const firstPage = await N.getMembers(token, { limit: 2 })
  const everyPage = await N.getMembers(token, { limit: 2, pages: false })
  const rlid = await N.getMembers(token, { resourceLinkId: true, limit: 4, pages: false })
  const learners = await N.getMembers(token, { role: 'Learner' })
  const brief = (ms) => ms.map((m) => ({
    user_id: m.user_id,
    roles: m.roles,
    name: m.name,
    email: m.email,
    resource_link_ids: (m.message || []).map((x) => (x['https://purl.imsglobal.org/spec/lti/claim/resource_link'] || {}).id)
  }))
  return {
    context: all.context,
    all: brief(all.members),
    first_page: { members: brief(firstPage.members), next: firstPage.next || null },
    every_page: brief(everyPage.members),
    rlid: brief(rlid.members),
    learners: brief(learners.members)
  }
}

// --- the run ----------------------------------------------------------------

async function run (cfg) {
  // Milliseconds each part took, to see where the test's time goes.
  const timings = { node_and_require: Math.round(process.uptime() * 1000) }
  let t0 = Date.now()
  const lap = (name) => { const now = Date.now(); timings[name] = now - t0; t0 = now }
  const db = await throwawayDatabase(cfg.pg_url)
  let tool
  try {
    tool = await startTool(cfg, db)
    lap('start')
    const reg = cfg.registration === 'dynamic'
      ? await registerDynamically(cfg, tool)
      : await registerByHand(cfg, tool)
    lap('registration')
    await apiOk(cfg, cfg.registrar_token, 'POST', `/api/courses/${cfg.course_id}/tools`, { tool_ids: [reg.tool_id] }, 200)
    // A link the SIS made by hand, with a column of 30.
    const sisLink = await apiOk(cfg, cfg.sis_token, 'POST', `/api/courses/${cfg.course_id}/resource-links`, {
      resource_link_id: 'unit-1',
      tool_id: reg.tool_id,
      title: 'Unit 1',
      custom: { id: 'custom-unit-1' },
      line_item: { label: 'Unit 1 column', score_maximum: '30' }
    }, 201)

    const first = await launch(cfg, reg, cfg.learners[0], 'resource_link', 'unit-1')
    const dl = await deepLink(cfg, reg, tool)
    check(dl.created_links.length === 2 && dl.created_line_items.length === 1,
      () => `deep linking made ${show(dl.created_links)} / ${show(dl.created_line_items)}`)
    const relaunch = await launch(cfg, reg, cfg.learners[0], 'resource_link', dl.created_links[0])
    const token = relaunch.token
    const quiz = relaunch.summary.lineitem
    check(quiz, 'the relaunch of the quiz carries no lineitem')

    lap('launches')

    const items = await lineItems(token)
    const bonus = items.created[0].id
    const out = {
      tool_url: tool.url,
      registration: reg,
      sis_link: sisLink,
      resource_link: first.summary,
      deep_linking: dl,
      relaunch: relaunch.summary,
      line_items: items,
      scores: await scores(cfg, token, quiz, bonus),
      members: await members(token),
      timings_ms: timings
    }
    lap('services')
    return out
  } finally {
    if (tool) {
      await lti.close({ silent: true }).catch(() => {})
      tool.server.close()
    }
    await db.drop().catch((e) => console.error('could not drop the ltijs database:', e.message))
    lap('stop')
  }
}

async function main () {
  const cfg = JSON.parse(process.argv[2])
  const out = await run(cfg)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().then(() => process.exit(0), (e) => {
  const detail = e && e.response ? ` (${e.response.statusCode} ${e.response.body})` : ''
  console.error(e && e.stack ? e.stack : e)
  console.error(`ltijs e2e tool failed: ${e && e.message}${detail}`)
  process.exit(1)
})
