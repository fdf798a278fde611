// Printed by tests/peers/gen_ui_module_cases.py from Tornado 6.6.1's RequestHandler.render: do not edit.

/// (name, template files, page, values as JSON, the page Tornado sends or None where it raises)
type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str, &'static str, Option<&'static str>);

const MODULE_FILES: &[(&str, &str)] = &[
    ("modules/entry.html", "<div class=\"entry\" id=\"e{{ entry[\"id\"] }}\">{{ entry[\"title\"] }}{% if show_comments %} ({{ len(entry[\"comments\"]) }} comments){% end %}</div>"),
    ("modules/tree.html", "<li>{{ node[\"name\"] }}{% if node[\"children\"] %}<ul>{% for c in node[\"children\"] %}{% module Tree(c) %}{% end %}</ul>{% end %}</li>"),
];

const CASES: &[Case] = &[
    (
        "the application's modules and their resources",
        &[
            ("page.html", "<html><head><title>{{ title }}</title></head>\n<body>{% for e in entries %}{% module Entry(e, show_comments=e[\"id\"] == 2) %}{% end %}\n{% module Counter() %}|{% module Counter(step=5) %}|{% module Assets(1, \"x\") %}</body></html>"),
        ],
        "page.html",
        "{\"title\": \"Blog\", \"entries\": [{\"id\": 1, \"title\": \"First <post>\", \"comments\": []}, {\"id\": 2, \"title\": \"Second\", \"comments\": [\"a\", \"b\"]}]}",
        Some("<html><head><title>Blog</title><link href=\"http://cdn.example/x.css\" type=\"text/css\" rel=\"stylesheet\"/><link href=\"/static/site.css\" type=\"text/css\" rel=\"stylesheet\"/>\n<style type=\"text/css\">\n.entry { margin: 1em; }\np { color: red; }\n</style>\n<meta name=\"m\" content=\"a&b\">\n</head>\n<body><div class=\"entry\" id=\"e1\">First &lt;post&gt;</div><div class=\"entry\" id=\"e2\">Second (2 comments)</div>\n1|6|[2]<script src=\"/static/entry.js\" type=\"text/javascript\"></script><script src=\"/abs/x.js\" type=\"text/javascript\"></script>\n<script type=\"text/javascript\">\n//<![CDATA[\nvar a = 1 < 2;\n//]]>\n</script>\n<p>counted 6</p>\n</body></html>"),
    ),
    (
        "Template modules' set_resources, once per template, a list or a string of files",
        &[
            ("page.html", "<html><head></head><body>{% for m in msgs %}{% module Template(\"message.html\", message=m) %}{% end %}{% module Template(\"side.html\") %}</body></html>"),
            ("message.html", "{{ set_resources(embedded_javascript=\"var m = 1;\", css_files=\"chat.css\", javascript_files=[\"chat.js\", \"https://x.example/y.js\", \"chat.js\"]) }}<div>{{ message }}</div>"),
            ("side.html", "{{ set_resources(html_head=\"<base target=\\\"_blank\\\">\", html_body=\"<footer>f</footer>\", embedded_css=\".side {}\", embedded_javascript=\"var s;\") }}<aside>{% include \"side-inner.html\" %}</aside>"),
            ("side-inner.html", "{{ set_resources(html_head=\"<base target=\\\"_blank\\\">\", html_body=\"<footer>f</footer>\", embedded_css=\".side {}\", embedded_javascript=\"var s;\") }}inner"),
        ],
        "page.html",
        "{\"msgs\": [\"hi\", \"<b>yo</b>\"]}",
        Some("<html><head><link href=\"/static/chat.css\" type=\"text/css\" rel=\"stylesheet\"/>\n<style type=\"text/css\">\n.side {}\n</style>\n<base target=\"_blank\">\n</head><body><div>hi</div><div>&lt;b&gt;yo&lt;/b&gt;</div><aside>inner</aside><script src=\"/static/chat.js\" type=\"text/javascript\"></script><script src=\"https://x.example/y.js\" type=\"text/javascript\"></script>\n<script type=\"text/javascript\">\n//<![CDATA[\nvar m = 1;\nvar s;\n//]]>\n</script>\n<footer>f</footer>\n</body></html>"),
    ),
    (
        "the order of first use: a Template module, then the application's",
        &[
            ("page.html", "<html><head></head><body>{% module Assets() %}{% module Template(\"t.html\") %}{% module Counter() %}{% module Assets() %}</body></html>"),
            ("t.html", "{{ set_resources(embedded_javascript=\"var t;\", javascript_files=\"site.js\", embedded_css=\"\", html_body=\"<i>t</i>\") }}t"),
        ],
        "page.html",
        "{}",
        Some("<html><head><link href=\"http://cdn.example/x.css\" type=\"text/css\" rel=\"stylesheet\"/><link href=\"/static/site.css\" type=\"text/css\" rel=\"stylesheet\"/>\n<style type=\"text/css\">\np { color: red; }\n</style>\n<meta name=\"m\" content=\"a&b\">\n</head><body>[0]t1[0]<script src=\"/static/entry.js\" type=\"text/javascript\"></script><script src=\"/static/site.js\" type=\"text/javascript\"></script>\n<script type=\"text/javascript\">\n//<![CDATA[\nvar a = 1 < 2;\nvar t;\n//]]>\n</script>\n<i>t</i><p>counted 1</p>\n</body></html>"),
    ),
    (
        "a module whose template calls it again",
        &[
            ("page.html", "<html><head></head><body><ul>{% module Tree(root) %}</ul></body></html>"),
        ],
        "page.html",
        "{\"root\": {\"name\": \"a\", \"children\": [{\"name\": \"b\", \"children\": [{\"name\": \"c\", \"children\": []}]}, {\"name\": \"<d>\", \"children\": []}]}}",
        Some("<html><head></head><body><ul><li>a<ul><li>b<ul><li>c</li></ul></li><li>&lt;d&gt;</li></ul></li></ul></body></html>"),
    ),
    (
        "modules with nothing to put in leave a page without head or body alone",
        &[
            ("page.html", "{% module linkify(url) %}|{% module Template(\"plain.html\", x=1) %}|{% module Template(\"plain.html\", x=2) %}"),
            ("plain.html", "plain {{ x }}"),
        ],
        "page.html",
        "{\"url\": \"http://example.com/a?b=1&c=2\"}",
        Some("<a href=\"http://example.com/a?b=1&amp;c=2\">http://example.com/a?b=1&amp;c=2</a>|plain 1|plain 2"),
    ),
    (
        "the first </head>, the last </body> for files and scripts, the first for html_body",
        &[
            ("page.html", "<html><head></head><!-- </head> --><body>{% module Counter() %}{% module Entry(e) %}<script>var s = \"</body>\";</script></body></html>"),
        ],
        "page.html",
        "{\"e\": {\"id\": 1, \"title\": \"First <post>\", \"comments\": []}}",
        Some("<html><head><style type=\"text/css\">\n.entry { margin: 1em; }\n</style>\n</head><!-- </head> --><body>1<div class=\"entry\" id=\"e1\">First &lt;post&gt;</div><script>var s = \"<p>counted 1</p>\n</body>\";</script><script src=\"/static/entry.js\" type=\"text/javascript\"></script><script src=\"/abs/x.js\" type=\"text/javascript\"></script>\n</body></html>"),
    ),
    (
        "an empty embedded_css from two templates joins to a newline",
        &[
            ("page.html", "<html><head></head><body>{% module Template(\"a.html\") %}{% module Template(\"b.html\") %}</body></html>"),
            ("a.html", "{{ set_resources(embedded_css=\"\") }}a"),
            ("b.html", "{{ set_resources(embedded_css=\"\") }}b"),
        ],
        "page.html",
        "{}",
        Some("<html><head><style type=\"text/css\">\n\n\n</style>\n</head><body>ab</body></html>"),
    ),
    (
        "modules.Name(..) in expressions: escaped by {{ }}, as they are by {% raw %}",
        &[
            ("page.html", "<html><head></head><body>{% raw modules.Assets(1) %}|{{ modules.Counter() }}|{% raw modules.Counter(step=2) %}|{{ modules.Entry(e) }}|{% raw modules.linkify(url) %}|{{ modules.linkify(url, shorten=True) }}</body></html>"),
        ],
        "page.html",
        "{\"e\": {\"id\": 2, \"title\": \"Second\", \"comments\": [\"a\", \"b\"]}, \"url\": \"http://example.com/a<b\"}",
        Some("<html><head><link href=\"http://cdn.example/x.css\" type=\"text/css\" rel=\"stylesheet\"/><link href=\"/static/site.css\" type=\"text/css\" rel=\"stylesheet\"/>\n<style type=\"text/css\">\np { color: red; }\n.entry { margin: 1em; }\n</style>\n<meta name=\"m\" content=\"a&b\">\n</head><body>[1]|1|3|&lt;div class=&quot;entry&quot; id=&quot;e2&quot;&gt;Second&lt;/div&gt;|<a href=\"http://example.com/a\">http://example.com/a</a>&lt;b|&lt;a href=&quot;http://example.com/a&quot;&gt;http://example.com/a&lt;/a&gt;&amp;lt;b<script src=\"/static/entry.js\" type=\"text/javascript\"></script><script src=\"/abs/x.js\" type=\"text/javascript\"></script>\n<script type=\"text/javascript\">\n//<![CDATA[\nvar a = 1 < 2;\n//]]>\n</script>\n<p>counted 3</p>\n</body></html>"),
    ),
    (
        "a page without </head> for a module's CSS",
        &[
            ("page.html", "<html><body>{% module Assets() %}</body></html>"),
        ],
        "page.html",
        "{}",
        None,
    ),
    (
        "a page without </body> for a module's JavaScript",
        &[
            ("page.html", "<html><head></head>{% module Template(\"j.html\") %}</html>"),
            ("j.html", "{{ set_resources(javascript_files=\"j.js\") }}j"),
        ],
        "page.html",
        "{}",
        None,
    ),
    (
        "set_resources with other resources for the same template",
        &[
            ("page.html", "<html><head></head><body>{% for m in msgs %}{% module Template(\"m.html\", m=m) %}{% end %}</body></html>"),
            ("m.html", "{{ set_resources(embedded_css=m) }}{{ m }}"),
        ],
        "page.html",
        "{\"msgs\": [\"a\", \"b\"]}",
        None,
    ),
];
