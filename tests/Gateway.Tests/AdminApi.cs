using System.Net.Http.Json;
using System.Text.Json;

namespace Gateway.Tests;

/// <summary>An HTTP client for a gateway's admin endpoint, with the API key when one is given.</summary>
internal sealed class AdminApi : IDisposable
{
    private readonly HttpClient _http;

    public AdminApi(GatewayProcess gateway, string? apiKey = null)
    {
        _http = new HttpClient { BaseAddress = gateway.Admin, Timeout = TimeSpan.FromSeconds(60) };
        if (apiKey is not null)
        {
            _http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        }
    }

    public HttpClient Http => _http;

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public async Task<(int Status, JsonElement Body)> SendAsync(HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        using var response = await _http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone());
    }

    /// <summary>The /metrics text.</summary>
    public Task<string> MetricsAsync(CancellationToken cancellationToken = default) =>
        _http.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);

    /// <summary>Polls /metrics until <paramref name="condition"/> holds (prefork workers report once a second).</summary>
    public async Task<string> MetricsAsync(Func<string, bool> condition, TimeSpan? patience = null)
    {
        var deadline = DateTime.UtcNow + (patience ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var text = await MetricsAsync();
            if (condition(text))
            {
                return text;
            }

            Assert.True(DateTime.UtcNow < deadline, $"/metrics never met the condition:\n{text}");
            await Task.Delay(200);
        }
    }

    /// <summary>The series of metric <paramref name="name"/> whose labels contain every one of <paramref name="labels"/> (e.g. <c>protocol="rpc"</c>).</summary>
    public static IEnumerable<string> Series(string metrics, string name, params string[] labels) =>
        metrics.Split('\n').Where(line => line.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(l => line.Contains(l, StringComparison.Ordinal)));

    /// <summary>The sum of those series' values.</summary>
    public static double SumOf(string metrics, string name, params string[] labels) =>
        Series(metrics, name, labels).Sum(line => double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Polls until <paramref name="condition"/> holds for the JSON at <paramref name="path"/>; counters settle asynchronously.</summary>
    public async Task<JsonElement> WaitForAsync(string path, Func<JsonElement, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var json = await GetJsonAsync(path);
            if (condition(json))
            {
                return json;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"GET {path} never met the condition; last answer: {json}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Polls <paramref name="path"/> until it answers <paramref name="status"/> (within two seconds: "at once").</summary>
    public async Task WaitForStatusAsync(string path, System.Net.HttpStatusCode status)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        System.Net.HttpStatusCode last;
        do
        {
            using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));
            last = response.StatusCode;
            if (last == status)
            {
                return;
            }

            await Task.Delay(20);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Fail($"GET {path} answered {(int)last}, not {(int)status}, for two seconds");
    }

    public void Dispose() => _http.Dispose();
}

internal static class JsonElementExtensions
{
    public static IEnumerable<JsonElement> Items(this JsonElement page) => page.GetProperty("items").EnumerateArray();

    public static string Str(this JsonElement element, string property) => element.GetProperty(property).GetString() ?? "";

    public static long Num(this JsonElement element, string property) => element.GetProperty(property).GetInt64();
}
