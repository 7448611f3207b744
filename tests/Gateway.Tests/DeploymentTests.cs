using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Gateway.Tests;

/// <summary>
/// The deployment files, checked as far as a machine without a Docker engine or a cluster can: the
/// kustomize base renders (with the real kubectl), every object passes its schema (kubernetes-models), the
/// Dockerfile lints (dockerfile-utils), and our own invariants hold over the rendered objects — probe paths
/// the app serves, ports that match appsettings.json, a grace period that covers the drain, non-root pods.
/// </summary>
public sealed partial class DeploymentTests
{
    private static readonly string Root = GatewayProcess.Metadata("RepositoryRoot");
    private static readonly Lazy<JsonElement[]> Rendered = new(Render);
    private static readonly string[] ProbeNames = ["startupProbe", "readinessProbe", "livenessProbe"];

    private static readonly Lazy<string> Validator = new(InstallValidator);

    /// <summary>deploy/validate with its pinned npm packages installed (npm ci, once per test run).</summary>
    private static string InstallValidator()
    {
        var directory = Path.Combine(Root, "deploy", "validate");
        if (!File.Exists(Path.Combine(directory, "node_modules", ".package-lock.json")))
        {
            var (code, output) = Run("npm", ["ci", "--no-audit", "--no-fund"], directory: directory);
            Assert.True(code == 0, $"npm ci in deploy/validate failed:\n{output}");
        }

        return directory;
    }

    /// <summary>Runs a command to its end (at most two minutes); returns its exit code and everything it printed.</summary>
    private static (int Code, string Output) Run(string file, IEnumerable<string> arguments, string? input = null, string? directory = null)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, WorkingDirectory = directory ?? Root };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var (code, stdout, stderr) = GatewayProcess.RunToExitAsync(start, input, TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
        return (code, stdout + stderr);
    }

    private static string RenderText()
    {
        try
        {
            var (code, output) = Run("kubectl", ["kustomize", "deploy/k8s"]);
            Assert.True(code == 0, $"kubectl kustomize deploy/k8s failed:\n{output}");
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Fail("kubectl is not on this machine: the manifests cannot be rendered, so they are NOT checked. Install kubectl.");
            throw;
        }
    }

    /// <summary>The rendered objects, each as JSON (YAML read by YamlDotNet, written out JSON-compatible).</summary>
    private static JsonElement[] Render()
    {
        var yaml = new DeserializerBuilder().Build();
        var json = new SerializerBuilder().JsonCompatible().Build();
        var reader = new Parser(new StringReader(RenderText()));
        reader.Consume<StreamStart>();
        var objects = new List<JsonElement>();
        while (reader.Accept<DocumentStart>(out _))
        {
            var document = yaml.Deserialize(reader);
            if (document is not null)
            {
                objects.Add(JsonDocument.Parse(json.Serialize(document)).RootElement.Clone());
            }
        }

        return [.. objects];
    }

    private static JsonElement Object(string kind, string? name = null) =>
        Rendered.Value.Single(o => o.GetProperty("kind").GetString() == kind && (name is null || o.GetProperty("metadata").GetProperty("name").GetString() == name));

    private static JsonElement PodSpec => Object("Deployment").GetProperty("spec").GetProperty("template").GetProperty("spec");

    private static JsonElement Container => PodSpec.GetProperty("containers").EnumerateArray().Single();

    /// <summary>YAML scalars come through as strings ("7007"); numbers are compared as such.</summary>
    private static int Int(JsonElement element) => element.ValueKind == JsonValueKind.Number ? element.GetInt32() : int.Parse(element.GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>appsettings.json with the ConfigMap's production overrides on top, as the pod reads it.</summary>
    private static PodSettings PodConfiguration()
    {
        var overrides = Object("ConfigMap", "gateway-config").GetProperty("data").GetProperty("appsettings.Production.json").GetString()!;
        return new PodSettings(JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "appsettings.json"))).RootElement, JsonDocument.Parse(overrides).RootElement);
    }

    /// <summary>A setting by its configuration path ("Gateway:Limits:ShutdownTimeoutSeconds"), the override first.</summary>
    private sealed record PodSettings(JsonElement Base, JsonElement Override)
    {
        public string? this[string path] => Find(Override, path) ?? Find(Base, path);

        private static string? Find(JsonElement element, string path)
        {
            foreach (var key in path.Split(':'))
            {
                if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(key, out element))
                {
                    return null;
                }
            }

            return element.ValueKind == JsonValueKind.Null ? null : element.ToString();
        }
    }

    private static int[] PassivePorts(PodSettings configuration)
    {
        var range = configuration["Gateway:Listeners:Ftp:PassivePorts"]!.Split('-').Select(int.Parse).ToArray();
        return [.. Enumerable.Range(range[0], range[1] - range[0] + 1)];
    }

    private static Dictionary<string, int> ContainerPorts() =>
        Container.GetProperty("ports").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => Int(p.GetProperty("containerPort")));

    [Fact]
    public void TheKustomizeBaseRendersEveryKindTheDeploymentNeeds()
    {
        var kinds = Rendered.Value.Select(o => o.GetProperty("kind").GetString()!).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Service", "Service", "ServiceMonitor"], kinds);
        Assert.All(Rendered.Value.Where(o => o.GetProperty("kind").GetString() != "Namespace"),
            o => Assert.Equal("gateway", o.GetProperty("metadata").GetProperty("namespace").GetString()));
    }

    [Fact]
    public void EveryRenderedObjectPassesItsSchema()
    {
        var (code, output) = Run("node", [Path.Combine(Validator.Value, "k8s.mjs")], RenderText());
        Assert.True(code == 0, output);
        Assert.Contains("9 objects, 0 problems", output, StringComparison.Ordinal);
    }

    [Fact]
    public void TheDockerfileLints()
    {
        var lint = Path.Combine(Validator.Value, "node_modules", ".bin", "dockerfile-utils");
        var (code, output) = Run(lint, ["lint", "Dockerfile"]);
        Assert.True(code == 0 && string.IsNullOrWhiteSpace(output), $"dockerfile-utils lint Dockerfile:\n{output}");
    }

    [Fact]
    public void TheDockerfilePublishesWithTheSameScriptAndRunsAsTheImagesUser()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        Assert.Contains("RUN deploy/publish /app", dockerfile, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^FROM mcr\.microsoft\.com/dotnet/aspnet:\$\{DOTNET_VERSION\}-noble-chiseled AS runtime$", dockerfile);
        Assert.Matches(@"(?m)^USER \$APP_UID$", dockerfile);
        Assert.DoesNotMatch(@"(?im)^ENV .*(ApiKey|Password)", dockerfile);

        // The ports it exposes are the ones appsettings.json (and the image's passive range) use.
        var configuration = PodConfiguration();
        var exposed = ExposeLine().Match(dockerfile).Groups[1].Value.Split(' ');
        Assert.Contains(configuration["Gateway:Listeners:Echo:Port"]!, exposed);
        Assert.Contains(configuration["Gateway:Listeners:Rpc:Port"]!, exposed);
        Assert.Contains(configuration["Gateway:Listeners:Ftp:Port"]!, exposed);
        Assert.Contains(configuration["Gateway:Listeners:Ftp:PassivePorts"]!, exposed);
        Assert.Contains(new Uri(configuration["Gateway:Admin:Url"]!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture), exposed);
    }

    [Fact]
    public void ContainerServiceAndPolicyPortsMatchTheConfiguration()
    {
        var configuration = PodConfiguration();
        var ports = ContainerPorts();
        Assert.Equal(int.Parse(configuration["Gateway:Listeners:Echo:Port"]!), ports["echo"]);
        Assert.Equal(int.Parse(configuration["Gateway:Listeners:Rpc:Port"]!), ports["rpc"]);
        Assert.Equal(int.Parse(configuration["Gateway:Listeners:Ftp:Port"]!), ports["ftp"]);
        Assert.Equal(new Uri(configuration["Gateway:Admin:Url"]!).Port, ports["admin"]);
        var passive = PassivePorts(configuration);
        Assert.Equal(passive, ports.Where(p => p.Key.StartsWith("pasv-", StringComparison.Ordinal)).Select(p => p.Value).Order());

        // The LoadBalancer forwards every protocol port to a container port of that name (FTP as 21 outside),
        // and every passive port one by one; the admin port stays inside the cluster.
        var service = Object("Service", "gateway").GetProperty("spec");
        var forwarded = service.GetProperty("ports").EnumerateArray()
            .ToDictionary(p => p.GetProperty("name").GetString()!, p => (Port: Int(p.GetProperty("port")), Target: p.GetProperty("targetPort")));
        Assert.Equal(21, forwarded["ftp"].Port);
        Assert.Equal(((string[])["echo", "ftp", "rpc", .. passive.Select(p => $"pasv-{p}")]).Order(StringComparer.Ordinal), forwarded.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, (_, target)) in forwarded)
        {
            var targetPort = target.ValueKind == JsonValueKind.String && !target.GetString()!.All(char.IsDigit) ? ports[target.GetString()!] : Int(target);
            Assert.Equal(ports[name], targetPort);
        }

        Assert.Equal("ClientIP", service.GetProperty("sessionAffinity").GetString());
        Assert.Equal("Local", service.GetProperty("externalTrafficPolicy").GetString());
        Assert.Equal("ClusterIP", Object("Service", "gateway-admin").GetProperty("spec").GetProperty("type").GetString());

        // The NetworkPolicy opens exactly the protocol ports to clients, and the admin port to monitoring only.
        var rules = Object("NetworkPolicy").GetProperty("spec").GetProperty("ingress").EnumerateArray().ToArray();
        var open = rules.Single(r => !r.TryGetProperty("from", out _)).GetProperty("ports").EnumerateArray()
            .SelectMany(p => Enumerable.Range(Int(p.GetProperty("port")), p.TryGetProperty("endPort", out var end) ? Int(end) - Int(p.GetProperty("port")) + 1 : 1))
            .Order();
        Assert.Equal(ports.Where(p => p.Key != "admin").Select(p => p.Value).Order(), open);
        var monitoring = rules.Single(r => r.TryGetProperty("from", out _));
        Assert.Equal([ports["admin"]], monitoring.GetProperty("ports").EnumerateArray().Select(p => Int(p.GetProperty("port"))));
    }

    [Fact]
    public void TheGracePeriodCoversPreStopTheDrainAndAMargin()
    {
        var configuration = PodConfiguration();
        var drain = int.Parse(configuration["Gateway:Limits:ShutdownTimeoutSeconds"]!);
        var preStop = Int(Container.GetProperty("lifecycle").GetProperty("preStop").GetProperty("sleep").GetProperty("seconds"));
        var grace = Int(PodSpec.GetProperty("terminationGracePeriodSeconds"));
        Assert.True(preStop >= 2, $"preStop sleeps {preStop} s: too short for endpoints to be removed");
        Assert.True(grace >= preStop + drain + 5, $"terminationGracePeriodSeconds {grace} < preStop {preStop} + drain {drain} + 5 s margin: Kubernetes would SIGKILL a drain in progress");
    }

    [Fact]
    public void EveryContainerRunsAsNonRootWithoutPrivilegesOnAReadOnlyRoot()
    {
        var pod = PodSpec.GetProperty("securityContext");
        Assert.Equal("true", pod.GetProperty("runAsNonRoot").ToString().ToLowerInvariant());
        Assert.NotEqual(0, Int(pod.GetProperty("runAsUser")));
        Assert.Equal("RuntimeDefault", pod.GetProperty("seccompProfile").GetProperty("type").GetString());
        foreach (var container in PodSpec.GetProperty("containers").EnumerateArray())
        {
            var security = container.GetProperty("securityContext");
            Assert.Equal("false", security.GetProperty("allowPrivilegeEscalation").ToString().ToLowerInvariant());
            Assert.Equal("true", security.GetProperty("readOnlyRootFilesystem").ToString().ToLowerInvariant());
            Assert.Equal(["ALL"], security.GetProperty("capabilities").GetProperty("drop").EnumerateArray().Select(c => c.GetString()));
            Assert.False(security.TryGetProperty("privileged", out var privileged) && privileged.ToString().Equals("true", StringComparison.OrdinalIgnoreCase));
            // A read-only root needs somewhere to write: /tmp (the runtime, the pool's control sockets) and the FTP root.
            var mounts = container.GetProperty("volumeMounts").EnumerateArray().Select(m => m.GetProperty("mountPath").GetString()).ToArray();
            Assert.Contains("/tmp", mounts);
            Assert.Contains(Path.GetDirectoryName(PodConfiguration()["Gateway:Listeners:Ftp:Root"]), mounts);
        }
    }

    [Fact]
    public async Task TheProbePathsAreServedByTheGateway()
    {
        var probes = ProbeNames
            .Select(p => Container.GetProperty(p).GetProperty("httpGet"))
            .ToArray();
        Assert.All(probes, p => Assert.Equal("admin", p.GetProperty("port").GetString()));

        await using var gateway = await GatewayProcess.StartAsync();
        using var http = new HttpClient { BaseAddress = gateway.Admin };
        foreach (var path in probes.Select(p => p.GetProperty("path").GetString()!).Distinct())
        {
            using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
            Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode}");
        }

        Assert.Equal("/readyz", Container.GetProperty("readinessProbe").GetProperty("httpGet").GetProperty("path").GetString());
    }

    [Fact]
    public async Task ThePublishedGatewayServesAsTheImageRunsIt()
    {
        var output = Directory.CreateTempSubdirectory("gateway-publish-");
        try
        {
            // The Dockerfile's own command (after its separate restore layer, as here after the test build's).
            var (code, log) = Run("bash", ["deploy/publish", output.FullName, "--no-restore"]);
            Assert.True(code == 0, $"deploy/publish failed:\n{log}");
            Assert.True(File.Exists(Path.Combine(output.FullName, "appsettings.json")), "the configuration file is published next to the binary");
            Assert.False(File.Exists(Path.Combine(output.FullName, "Gateway")), "no apphost: the image runs `dotnet Gateway.dll`");

            // As the image starts it: `dotnet Gateway.dll` in the publish directory, Production, FTP root on the volume.
            var start = new ProcessStartInfo("dotnet") { WorkingDirectory = output.FullName, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in (string[])["Gateway.dll", .. GatewayProcess.LoopbackArgs])
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            start.Environment["Gateway__Listeners__Ftp__Root"] = Path.Combine(output.FullName, "data", "ftp");
            await using var gateway = await GatewayProcess.StartAsync(start);
            using var echo = await TcpClients.ConnectAsync(gateway.Echo);
            await echo.SendAsync("hello\n"u8.ToArray(), System.Net.Sockets.SocketFlags.None);
            var buffer = new byte[6];
            var received = 0;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (received < buffer.Length)
            {
                var n = await echo.ReceiveAsync(buffer.AsMemory(received), System.Net.Sockets.SocketFlags.None, timeout.Token);
                Assert.NotEqual(0, n);
                received += n;
            }

            Assert.Equal("hello\n"u8.ToArray(), buffer);
            using var http = new HttpClient { BaseAddress = gateway.Admin };
            Assert.Equal("ready\n", await http.GetStringAsync(new Uri("/readyz", UriKind.Relative)));
            // The dashboard's files travel inside the binary: no wwwroot in the image.
            Assert.Contains("<title>Gateway dashboard</title>", await http.GetStringAsync(new Uri("/admin/ui/", UriKind.Relative)), StringComparison.Ordinal);
            Assert.StartsWith("/*! https://github.com/leeoniya/uPlot", await http.GetStringAsync(new Uri("/admin/ui/vendor/uPlot.iife.min.js", UriKind.Relative)), StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(output.FullName, "wwwroot")));
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    [GeneratedRegex(@"(?m)^EXPOSE (.+)$")]
    private static partial Regex ExposeLine();
}
