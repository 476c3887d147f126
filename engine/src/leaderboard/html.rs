//! The leaderboard's pages: one self-contained HTML document (inline style and script, no
//! network resources) with the sortable ranking and, for the exported file, each entry's
//! detail per pool; the server shows the same ranking with entry pages of their own.
//!
//! Every text that comes from a submitter (name, author, parameters, messages, logs) goes
//! through [`escape`]; nothing from the database is ever placed in a script or an attribute
//! unescaped.

use std::fmt::Write as _;

use crate::leaderboard::rank::{Entry, Ranking};
use crate::leaderboard::score::PartScore;

/// Escapes text for HTML content and quoted attributes. Five replacements: no crate needed.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where entry links point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Anchors in the same document (the exported file holds every entry's detail).
    Inline,
    /// `/entries/ID` pages (the server).
    Pages,
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem;margin-bottom:.2rem}
.sub{color:#5b6475;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.92rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f6f9;position:sticky;top:0}
th.sortable{cursor:pointer;user-select:none}
th.sortable:after{content:" \2195";color:#9aa3b2}
th.asc:after{content:" \2191";color:#1d2330}
th.desc:after{content:" \2193";color:#1d2330}
tr.bound td{color:#5b6475;font-style:italic;background:#fafbfc}
tr.failed td{color:#8a2a2a}
.tag{display:inline-block;padding:0 .4rem;border-radius:.6rem;font-size:.8rem;background:#eef1f6}
.sig{background:#dff3e4;color:#17622e}
.ns{background:#f3f0df;color:#6b5d12}
td.ci{color:#5b6475;font-size:.85rem}
.hash{font-family:ui-monospace,monospace;font-size:.8rem;color:#5b6475}
section.entry{border-top:2px solid #e3e6ec;margin-top:2rem}
pre{background:#f4f6f9;padding:.6rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
a{color:#1f5fbf}
table.failed td:last-child,table.pools td:last-child{white-space:normal;word-break:break-word}
"#;

// Sorts a table by the clicked header: cells carry their sort key in `data-v` (numbers) or
// their text; reference rows (`tr.bound`) stay below the entries.
const SCRIPT: &str = r#"
document.querySelectorAll("table.ranking").forEach(function(t){
  var heads=t.querySelectorAll("th.sortable");
  heads.forEach(function(th,idx){
    th.addEventListener("click",function(){
      var col=Array.prototype.indexOf.call(th.parentNode.children,th);
      var asc=!th.classList.contains("asc");
      heads.forEach(function(h){h.classList.remove("asc","desc")});
      th.classList.add(asc?"asc":"desc");
      var body=t.tBodies[0];
      var rows=Array.prototype.filter.call(body.rows,function(r){return !r.classList.contains("bound")});
      var fixed=Array.prototype.filter.call(body.rows,function(r){return r.classList.contains("bound")});
      function key(r){var c=r.cells[col];var v=c.getAttribute("data-v");return v===null?c.textContent.trim().toLowerCase():parseFloat(v)}
      rows.sort(function(a,b){var x=key(a),y=key(b);if(typeof x==="number"&&isNaN(x))x=-Infinity;if(typeof y==="number"&&isNaN(y))y=-Infinity;return (x<y?-1:x>y?1:0)*(asc?1:-1)});
      rows.concat(fixed).forEach(function(r){body.appendChild(r)});
    });
  });
  t.setAttribute("data-sortable","ready");
});
"#;

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) => format!(r#"<td class="num" data-v="{v}">{v:.4}</td>"#),
        None => r#"<td class="num" data-v="NaN">–</td>"#.into(),
    }
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    )
}

fn foot() -> String {
    format!("<script>{SCRIPT}</script>\n</body></html>\n")
}

fn entry_href(e: &Entry, links: Links) -> String {
    match links {
        Links::Inline => format!("#entry-{}", e.submission.id),
        Links::Pages => format!("/entries/{}", e.submission.id),
    }
}

/// The ranking table and the failed and waiting lists.
fn ranking_body(r: &Ranking, links: Links) -> String {
    let mut h = String::new();
    let total: usize = r.part_rows.iter().sum();
    let _ = write!(
        h,
        "<h1>{}</h1><p class=\"sub\">{} part: {} test queries over {} benchmark(s), {} pool(s). \
         Ranked by mean V_B (routed accuracy over the pool's best single model), ties by fuel. \
         Scores are computed by the engine on test labels no submission sees.</p>",
        escape(&r.title),
        r.part.as_str(),
        total,
        r.benchmarks.len(),
        r.pools.len()
    );
    h.push_str("<table class=\"ranking\" id=\"ranking\"><thead><tr>");
    let _ = write!(
        h,
        "<th class=\"sortable num\">rank</th><th class=\"sortable\">name</th>\
         <th class=\"sortable\">author</th><th class=\"sortable num\">mean V_B</th>\
         <th class=\"ci\">interval</th>"
    );
    let per_benchmark = r.benchmarks.len() > 1;
    if per_benchmark {
        for b in &r.benchmarks {
            let _ = write!(h, "<th class=\"sortable num\">{}</th>", escape(b));
        }
    }
    h.push_str(
        "<th class=\"sortable num\">fuel</th><th>vs next</th><th class=\"sortable\">submitted</th>\
         <th>sha256</th></tr></thead><tbody>",
    );
    for e in &r.entries {
        let s = &e.submission;
        let _ = write!(
            h,
            "<tr class=\"entry\" data-entry=\"{id}\"><td class=\"num\" data-v=\"{rank}\">{rank}</td>\
             <td><a href=\"{href}\">{name}</a></td><td>{author}</td>{vb}<td class=\"ci\">{ci}</td>",
            id = s.id,
            rank = e.rank,
            href = entry_href(e, links),
            name = escape(&s.name),
            author = escape(s.author.as_deref().unwrap_or("")),
            vb = num(e.mean_vb),
            ci = ci(e.mean_vb_ci),
        );
        if per_benchmark {
            for v in &e.per_benchmark {
                h.push_str(&num(*v));
            }
        }
        let fuel = s.fuel.unwrap_or(0);
        let _ = write!(
            h,
            "<td class=\"num\" data-v=\"{fuel}\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"hash\" title=\"{sha}\">{short}</td></tr>",
            crate::leaderboard::rank::fuel_text(fuel),
            match e.p_vs_next {
                Some(p) if p < crate::leaderboard::rank::ALPHA =>
                    format!("<span class=\"tag sig\">differs, p={p:.3}</span>"),
                Some(p) => format!("<span class=\"tag ns\">p={p:.3}</span>"),
                None => String::new(),
            },
            escape(&s.submitted_at),
            sha = escape(&s.sha256),
            short = escape(&s.sha256[..s.sha256.len().min(12)]),
        );
    }
    for b in &r.bounds {
        let _ = write!(
            h,
            "<tr class=\"bound\"><td></td><td>{} (bound)</td><td>engine</td>{}<td></td>",
            escape(&b.name),
            num(b.mean_vb)
        );
        if per_benchmark {
            for v in &b.per_benchmark {
                h.push_str(&num(*v));
            }
        }
        h.push_str("<td></td><td></td><td></td><td></td></tr>");
    }
    h.push_str("</tbody></table>");
    if r.entries.is_empty() {
        h.push_str("<p>No scored entries yet.</p>");
    }
    if !r.failed.is_empty() {
        h.push_str(
            "<h2>Failed</h2><table class=\"failed\"><thead><tr><th>name</th><th>author</th>\
             <th>kinds</th><th>first error</th></tr></thead><tbody>",
        );
        for e in &r.failed {
            let s = &e.submission;
            let _ = write!(
                h,
                "<tr class=\"failed\" data-entry=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                s.id,
                entry_href(e, links),
                escape(&s.name),
                escape(s.author.as_deref().unwrap_or("")),
                escape(s.error_kinds.as_deref().unwrap_or("")),
                escape(crate::util::clip(s.error.as_deref().unwrap_or(""), 200)),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !r.pending.is_empty() {
        h.push_str("<h2>Waiting</h2><ul>");
        for s in &r.pending {
            let _ = write!(
                h,
                "<li>#{} {} ({})</li>",
                s.id,
                escape(&s.name),
                escape(&s.status)
            );
        }
        h.push_str("</ul>");
    }
    h
}

fn ci(c: Option<(f64, f64)>) -> String {
    c.map_or(String::new(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]"))
}

/// One entry's detail: identity, then a row per pool with mu, V_R, V_B, Ep and intervals.
fn entry_detail(r: &Ranking, e: &Entry) -> String {
    let s = &e.submission;
    let mut h = String::new();
    let _ = write!(
        h,
        "<section class=\"entry\" id=\"entry-{id}\"><h2>#{id} {name}</h2><table><tbody>\
         <tr><th>author</th><td>{author}</td></tr><tr><th>status</th><td>{status}</td></tr>\
         <tr><th>parameters</th><td>{params}</td></tr>\
         <tr><th>sha256</th><td class=\"hash\">{sha}</td></tr>\
         <tr><th>router (as it reports)</th><td>{router} {abi} sdk {sdk}</td></tr>\
         <tr><th>submitted</th><td>{at}</td></tr><tr><th>scored</th><td>{scored}</td></tr>\
         <tr><th>fuel</th><td>{fuel}</td></tr><tr><th>time</th><td>{secs}</td></tr>",
        id = s.id,
        name = escape(&s.name),
        author = escape(s.author.as_deref().unwrap_or("")),
        status = escape(&s.status),
        params = escape(if s.params.is_empty() {
            "(none)"
        } else {
            &s.params
        }),
        sha = escape(&s.sha256),
        router = escape(s.router_name.as_deref().unwrap_or("")),
        abi = escape(s.abi.as_deref().unwrap_or("")),
        sdk = escape(s.sdk_version.as_deref().unwrap_or("?")),
        at = escape(&s.submitted_at),
        scored = escape(s.scored_at.as_deref().unwrap_or("")),
        fuel = s.fuel.map_or("–".into(), |f| f.to_string()),
        secs = s.seconds.map_or("–".into(), |t| format!("{t:.1} s")),
    );
    if let Some(k) = &s.error_kinds {
        let _ = write!(h, "<tr><th>failed</th><td>{}</td></tr>", escape(k));
    }
    let _ = write!(
        h,
        "</tbody></table><table class=\"pools\"><thead><tr><th>pool</th><th class=\"num\">mu</th>\
         <th>mu interval</th><th class=\"num\">V_R</th><th class=\"num\">V_B</th>\
         <th>V_B interval</th><th class=\"num\">Ep</th><th class=\"num\">fuel</th>\
         <th class=\"num\">seconds</th><th>error</th></tr></thead><tbody>"
    );
    for res in &e.results {
        let label = r
            .pools
            .iter()
            .find(|p| p.id == res.pool)
            .map_or_else(|| res.pool.to_string(), |p| p.label());
        let part: Option<&PartScore> = res.part(r.part);
        let _ = write!(
            h,
            "<tr><td>{}</td>{}<td>{}</td>{}{}<td>{}</td>{}<td class=\"num\">{}</td>\
             <td class=\"num\">{:.2}</td><td>{}</td></tr>",
            escape(&label),
            num(part.map(|p| p.mu)),
            ci(part.and_then(|p| p.mu_ci)),
            num(part.and_then(|p| p.vr)),
            num(part.and_then(|p| p.vb)),
            ci(part.and_then(|p| p.vb_ci)),
            num(part.map(|p| p.ep)),
            res.fuel.map_or("–".into(), |f| f.to_string()),
            res.seconds,
            escape(&match (&res.error_kind, &res.error) {
                (Some(k), Some(m)) => format!("{k}: {}", crate::util::clip(m, 400)),
                _ => String::new(),
            }),
        );
    }
    h.push_str("</tbody></table></section>");
    h
}

/// The exported page: the ranking and every entry's detail, in one file.
pub fn export_page(r: &Ranking) -> String {
    let mut h = head(&r.title);
    h.push_str(&ranking_body(r, Links::Inline));
    for e in r.entries.iter().chain(&r.failed) {
        h.push_str(&entry_detail(r, e));
    }
    h.push_str(&foot());
    h
}

/// The server's ranking page.
pub fn ranking_page(r: &Ranking) -> String {
    let mut h = head(&r.title);
    h.push_str(&ranking_body(r, Links::Pages));
    h.push_str(
        "<p class=\"sub\">Submit with <code>POST /api/submissions?name=NAME</code>, a bearer \
         token and the component as the body; status at <code>GET /api/submissions/ID</code>.\
         </p>",
    );
    h.push_str(&foot());
    h
}

/// The server's page of one entry (`None` when the ranking does not hold it).
pub fn entry_page(r: &Ranking, id: i64) -> Option<String> {
    let e = r
        .entries
        .iter()
        .chain(&r.failed)
        .find(|e| e.submission.id == id)?;
    let mut h = head(&format!("#{id} {}", e.submission.name));
    let _ = write!(h, "<p><a href=\"/\">← {}</a></p>", escape(&r.title));
    h.push_str(&entry_detail(r, e));
    h.push_str(&foot());
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
