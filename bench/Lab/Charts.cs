using ScottPlot;

namespace Gateway.Lab;

/// <summary>A chart per scenario (PNG, drawn by ScottPlot), named as the report links them.</summary>
internal static class Charts
{
    private const int Width = 900, Height = 480;

    /// <summary>The warm-up chart's key among the scenarios' (and its file name, .png).</summary>
    public const string WarmupChart = "warmup";

    /// <summary>Draws every chart the results allow into <paramref name="directory"/>; returns scenario → file name.</summary>
    public static Dictionary<string, string> Draw(Results results, string directory)
    {
        var rows = results.Rows;
        var drawn = new Dictionary<string, string>();
        void Save(string scenario, Plot? plot)
        {
            if (plot is null)
            {
                return;
            }

            var file = $"{scenario}.png";
            plot.SavePng(Path.Combine(directory, file), Width, Height);
            drawn[scenario] = file;
        }

        Save(WarmupChart, Warmup(results.Warmups ?? []));
        Save("ping", Lines(rows, "ping", r => r.Connections, r => r.Rps, "RPC ping, one in flight: requests/s by connections", "connections", "requests/s"));
        // The crowd's rows (16 active among 100k, prefork) are a goal line of their own, not a point of this chart.
        Save("idle", Lines([.. rows.Where(r => r.Model != Comparison.CrowdModel)], "idle", r => r.Idle, r => r.P50Us, "Four active clients among N idle: median latency (log scale)", "idle connections", "p50 µs", log: true));
        foreach (var (scenario, title) in Report.ScenarioTitles)
        {
            if (scenario is "ping" or "idle")
            {
                continue;
            }

            var (value, unit) = scenario switch
            {
                "memory" or "memory-quiet" => ((Func<Row, double>)(r => r.KibPerIdle ?? 0), "KiB per idle connection"),
                "echo-bulk" or "ftp-stor" or "ftp-stor-durable" or "ftp-retr" => (r => r.Mbps, "Mb/s"),
                "churn" => (r => r.Rps, "connections/s"),
                _ => (r => r.Rps, "requests/s"),
            };
            var selected = rows.Where(r => r.Scenario == scenario && value(r) > 0 && (scenario is not ("memory" or "memory-quiet") || r.Idle == 10_000)).ToList();
            if (scenario == "echo-64")
            {
                // The anchor of goal P3: Redis PING at the same 16 connections.
                selected.AddRange(rows.Where(r => r.Model == "redis" && r.Scenario == "ping" && r.Connections == 16 && r.Rps > 0)
                    .Select(r => r with { Model = "redis PING" }));
            }

            Save(scenario, selected.Count == 0 ? null : Bars(selected, value, title, unit));
        }

        return drawn;
    }

    /// <summary>Replies per second from a fresh server's first request, one line per model (the median second over the rounds).</summary>
    private static Plot? Warmup(IReadOnlyList<WarmupCurve> curves)
    {
        if (curves.Count == 0)
        {
            return null;
        }

        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        var seconds = curves.Max(c => c.PerSecond.Count);
        var highest = 0.0;
        foreach (var model in curves.GroupBy(c => c.Model))
        {
            // Each second's median over the rounds that reached it (the last, partial second is not in a timeline).
            var median = Enumerable.Range(0, seconds).Select(i => model.Where(c => c.PerSecond.Count > i).Select(c => c.PerSecond[i]).Order().ToList())
                .TakeWhile(values => values.Count > 0).Select(values => values[(values.Count - 1) / 2]).ToArray();
            if (median.Length == 0)
            {
                continue;
            }

            highest = Math.Max(highest, median.Max());
            var line = plot.Add.Scatter(Enumerable.Range(1, median.Length).Select(i => (double)i).ToArray(), median);
            line.LegendText = model.Key;
            line.Color = Report.IsAnchor(model.Key) ? Colors.Black : palette.GetColor(index++);
            line.LineWidth = Report.IsAnchor(model.Key) ? 3 : 2;
            line.LinePattern = Report.IsAnchor(model.Key) ? LinePattern.Dashed : LinePattern.Solid;
        }

        plot.Add.VerticalLine(WarmupCurve.GoalSeconds, 1, Colors.Gray, LinePattern.Dotted);
        plot.Title($"A fresh server's first seconds: RPC ping, 16 connections (dotted: the goal's {WarmupCurve.GoalSeconds} s)");
        plot.XLabel("second from the first request");
        plot.YLabel("replies/s");
        plot.ShowLegend(Edge.Right);
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(1, seconds).Select(i => (double)i)], [.. Enumerable.Range(1, seconds).Select(i => $"{i}")]);
        plot.Axes.SetLimitsY(0, highest * 1.08);
        return plot;
    }

    /// <summary>One line per model over categorical x values (1, 16, 256, 4096 …), evenly spaced.</summary>
    private static Plot? Lines(IReadOnlyList<Row> rows, string scenario, Func<Row, int> x, Func<Row, double> y, string title, string xLabel, string yLabel, bool log = false)
    {
        // A log axis is drawn as log10 of the values with ticks labelled back in the values' units.
        var shown = log ? (Func<Row, double>)(r => Math.Log10(y(r))) : y;
        var selected = rows.Where(r => r.Scenario == scenario && y(r) > 0).ToList();
        if (selected.Count == 0)
        {
            return null;
        }

        var categories = selected.Select(x).Distinct().Order().ToArray();
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10(); // ten models; anchors are drawn in black
        var index = 0;
        foreach (var model in selected.GroupBy(r => r.Model))
        {
            var points = model.OrderBy(x).ToArray();
            var line = plot.Add.Scatter(points.Select(p => (double)Array.IndexOf(categories, x(p))).ToArray(), points.Select(shown).ToArray());
            line.LegendText = model.Key;
            line.Color = Report.IsAnchor(model.Key) ? Colors.Black : palette.GetColor(index++);
            line.LineWidth = Report.IsAnchor(model.Key) ? 3 : 1.5f;
            line.LinePattern = Report.IsAnchor(model.Key) ? LinePattern.Dashed : LinePattern.Solid;
        }

        plot.Axes.Bottom.SetTicks([.. categories.Select((_, i) => (double)i)], [.. categories.Select(c => c.ToString("N0", System.Globalization.CultureInfo.InvariantCulture))]);
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend(Edge.Right);
        if (log)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = v => Math.Pow(10, v).ToString("N0", System.Globalization.CultureInfo.InvariantCulture),
            };
            plot.Axes.SetLimitsY(Math.Floor(selected.Min(shown)), Math.Ceiling(selected.Max(shown)));
        }
        else
        {
            plot.Axes.SetLimitsY(0, selected.Max(y) * 1.08);
        }
        return plot;
    }

    /// <summary>One bar per row (model, or model at a connection count when there are several), anchors in grey.</summary>
    private static Plot Bars(List<Row> rows, Func<Row, double> value, string title, string unit)
    {
        var plot = new Plot();
        var several = rows.Select(r => r.Model).Distinct().Count() < rows.Count;
        var bars = rows.Select((r, i) => new Bar
        {
            Position = i,
            Value = value(r),
            FillColor = Report.IsAnchor(r.Model) ? Colors.Gray : Colors.SteelBlue,
            Label = value(r) >= 100 ? value(r).ToString("N0", System.Globalization.CultureInfo.InvariantCulture) : value(r).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture),
        }).ToList();
        plot.Add.Bars(bars);
        plot.Axes.Bottom.SetTicks([.. rows.Select((_, i) => (double)i)],
            [.. rows.Select(r => several ? $"{r.Model}\n{r.Connections} conn" : r.Model)]);
        plot.Axes.Bottom.TickLabelStyle.Rotation = -30;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.MinimumSize = 110;
        plot.Title(title);
        plot.YLabel(unit);
        plot.Axes.Margins(bottom: 0);
        return plot;
    }
}
