/** The dashboard's page: a skeleton that page-script.ts fills from /status. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Ballast</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Ballast</h1>
  <span id="live" class="live" role="status">connecting…</span>
  <input id="filter" type="search" placeholder="Filter by server, upstream or state" aria-label="Filter servers" autocomplete="off">
</header>
<main>
  <section id="listeners" class="listeners" aria-label="Listeners" hidden></section>
  <div id="upstreams"></div>
  <p id="note" class="note" hidden></p>
</main>
<p id="toast" class="toast" role="alert" hidden></p>
<dialog id="token-dialog" aria-labelledby="token-title">
  <form method="dialog">
    <h2 id="token-title">Admin token</h2>
    <p id="token-why"></p>
    <input id="token" type="password" autocomplete="off" required aria-label="Admin token">
    <div class="buttons"><button value="cancel" formnovalidate>Cancel</button> <button value="ok" class="primary">Send</button></div>
  </form>
</dialog>
<noscript><p class="note">The dashboard needs JavaScript; <a href="/status">/status</a> has the same numbers as JSON.</p></noscript>
</body>
</html>
`;
