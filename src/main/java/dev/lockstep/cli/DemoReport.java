package dev.lockstep.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The demo's self-contained HTML report: a chart (inline SVG, no scripts fetched from anywhere)
 * of throughput and mirroring state over time with the fault, the failover and the rejoin
 * marked, the summary, and the samples as JSON in the page for tools to read.
 */
final class DemoReport {

    /**
     * One sample of the run.
     *
     * @param seconds   since the workload started
     * @param txPerSec  acknowledged transfers per second since the previous sample
     * @param state     mirroring state then
     * @param epoch     epoch then
     * @param principal principal then
     */
    record Sample(double seconds, double txPerSec, String state, long epoch, String principal) {
    }

    /**
     * A moment worth a line on the chart.
     *
     * @param seconds since the workload started
     * @param label   what happened
     */
    record Mark(double seconds, String label) {
    }

    private static final int WIDTH = 900;
    private static final int HEIGHT = 320;
    private static final int LEFT = 60;
    private static final int BOTTOM = 40;
    private static final int BAND = 18;
    private static final Map<String, String> STATE_COLOURS = Map.of("SYNCHRONIZED", "#2e9e44", "SYNCHRONIZING", "#e0a800",
            "DISCONNECTED", "#d9534f", "SUSPENDED", "#888888", "PENDING_FAILOVER", "#7b3fbf");

    private DemoReport() {
    }

    /** Writes the report; returns the file. */
    static Path write(Path file, List<Sample> samples, List<Mark> marks, Map<String, String> summary) throws IOException {
        StringBuilder html = new StringBuilder();
        html.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lockstep failover demo</title>\n")
                .append("<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}")
                .append("td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}</style></head><body>\n")
                .append("<h1>Lockstep failover demo</h1>\n").append(chart(samples, marks)).append("\n<h2>Summary</h2>\n<table>\n");
        summary.forEach((k, v) -> html.append("<tr><th>").append(escape(k)).append("</th><td>").append(escape(v)).append("</td></tr>\n"));
        html.append("</table>\n<h2>Events</h2>\n<ul>\n");
        for (Mark m : marks) {
            html.append(String.format(Locale.ROOT, "<li>%.1f s: %s</li>%n", m.seconds(), escape(m.label())));
        }
        html.append("</ul>\n<script type=\"application/json\" id=\"demo-data\">").append(json(samples, marks))
                .append("</script>\n</body></html>\n");
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, html, StandardCharsets.UTF_8);
        return file;
    }

    private static String chart(List<Sample> samples, List<Mark> marks) {
        double maxT = Math.max(1, samples.isEmpty() ? 1 : samples.get(samples.size() - 1).seconds());
        double maxY = Math.max(1, samples.stream().mapToDouble(Sample::txPerSec).max().orElse(1)) * 1.1;
        int plotW = WIDTH - LEFT - 20;
        int plotH = HEIGHT - BOTTOM - BAND - 20;
        StringBuilder svg = new StringBuilder();
        svg.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                + "role=\"img\" aria-label=\"throughput and mirroring state over time\">%n", WIDTH, HEIGHT));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"14\" font-size=\"12\">transfers/s (line), mirroring state (band)"
                + "</text>%n", LEFT));
        for (int i = 0; i < samples.size(); i++) {
            Sample s = samples.get(i);
            double from = i == 0 ? 0 : samples.get(i - 1).seconds();
            svg.append(String.format(Locale.ROOT, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>%n",
                    LEFT + from / maxT * plotW, HEIGHT - BOTTOM + 4, Math.max(0.5, (s.seconds() - from) / maxT * plotW), BAND - 4,
                    STATE_COLOURS.getOrDefault(s.state(), "#000"), escape(s.state())));
        }
        List<String> points = new ArrayList<>();
        for (Sample s : samples) {
            points.add(String.format(Locale.ROOT, "%.1f,%.1f", LEFT + s.seconds() / maxT * plotW,
                    20 + plotH - s.txPerSec() / maxY * plotH));
        }
        svg.append("<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"").append(String.join(" ", points))
                .append("\"/>\n");
        svg.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>%n", LEFT, 20 + plotH,
                LEFT + plotW, 20 + plotH));
        svg.append(String.format(Locale.ROOT, "<text x=\"4\" y=\"24\" font-size=\"11\">%.0f</text><text x=\"4\" y=\"%d\" "
                + "font-size=\"11\">0</text>%n", maxY, 20 + plotH));
        svg.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%.0f s</text>%n", LEFT + plotW - 30,
                HEIGHT - 4, maxT));
        for (Mark m : marks) {
            double x = LEFT + m.seconds() / maxT * plotW;
            svg.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"20\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d9534f\" "
                    + "stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#d9534f\">%s</text>%n",
                    x, x, 20 + plotH, x + 3, 34 + 14 * marks.indexOf(m), escape(m.label())));
        }
        return svg.append("</svg>").toString();
    }

    private static String json(List<Sample> samples, List<Mark> marks) {
        StringBuilder j = new StringBuilder("{\"samples\":[");
        for (int i = 0; i < samples.size(); i++) {
            Sample s = samples.get(i);
            j.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT,
                    "{\"t\":%.2f,\"txPerSec\":%.1f,\"state\":\"%s\",\"epoch\":%d,\"principal\":\"%s\"}",
                    s.seconds(), s.txPerSec(), s.state(), s.epoch(), jsonText(s.principal())));
        }
        j.append("],\"marks\":[");
        for (int i = 0; i < marks.size(); i++) {
            j.append(i == 0 ? "" : ",").append(String.format(Locale.ROOT, "{\"t\":%.2f,\"label\":\"%s\"}", marks.get(i).seconds(),
                    jsonText(marks.get(i).label())));
        }
        return j.append("]}").toString();
    }

    private static String jsonText(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"").replace("<", "\\u003c");
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
